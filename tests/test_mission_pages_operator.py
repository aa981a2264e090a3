"""The operator buttons on a mission's page: who gets which, what they do, refusals."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from missions.models import Mission
from tests.support.engine import drain, started
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


def operate(client: Client, mission: Mission, action: str, **data):
    return client.post(reverse("missions:operate", args=[mission.id, action]), data)


def buttons(client: Client, mission: Mission) -> set[str]:
    text = client.get(reverse("missions:detail", args=[mission.id])).text
    return {
        action
        for action in ("pause", "resume", "retry", "cancel")
        if reverse("missions:operate", args=[mission.id, action]) in text
    }


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def operator(db):
    from tests.conftest import make_user

    user = make_user("operator")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_mission", "change_mission"])
    )
    return user


def test_a_requester_may_only_cancel_their_own_mission(requester):
    mission = drain(started(requester, "test_sleep", seconds=3600))
    client = logged_in(requester)
    assert buttons(client, mission) == {"cancel"}
    assert operate(client, mission, "pause").status_code == 403
    mission.refresh_from_db()
    assert mission.status == Mission.Status.WAITING


def test_an_admin_gets_the_buttons_the_state_allows(admin_user, tmp_path):
    waiting = drain(started(admin_user, "test_sleep", seconds=3600))
    failed = drain(started(admin_user, "test_refuse", order_id="A-1", amount="5000"))
    done = drain(started(admin_user))
    client = logged_in(admin_user)
    assert buttons(client, waiting) == {"pause", "cancel"}
    assert buttons(client, failed) == {"retry"}
    assert buttons(client, done) == set()


def test_pause_and_resume_change_the_mission_and_say_so(operator, requester):
    mission = drain(started(requester, "test_sleep", seconds=3600))
    client = logged_in(operator)
    response = operate(client, mission, "pause")
    assert response.status_code == 302
    assert said(response) == ["Mission paused."]
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PAUSED
    assert buttons(client, mission) == {"resume", "cancel"}
    operate(client, mission, "resume")
    mission.refresh_from_db()
    assert mission.status == Mission.Status.RUNNING
    assert mission.observations.filter(kind="resumed", message=f"Resumed by {operator}").exists()


def test_retry_runs_a_failed_mission_again(operator, requester, tmp_path):
    marker = tmp_path / "attempts"
    mission = drain(
        started(requester, "test_flaky", marker=str(marker), fail_times=1, max_attempts=1)
    )
    assert mission.status == Mission.Status.FAILED
    response = operate(logged_in(operator), mission, "retry")
    assert said(response) == ["Mission retried from its failed step."]
    mission = drain(mission)
    assert mission.status == Mission.Status.SUCCEEDED


def test_a_refused_operation_is_a_message_not_an_error_page(operator, requester):
    mission = drain(started(requester))
    assert mission.status == Mission.Status.SUCCEEDED
    response = operate(logged_in(operator), mission, "retry")
    assert response.status_code == 302
    [message] = said(response)
    assert message.startswith("Could not retry the mission: mission is succeeded")


def test_cancel_records_who_and_why(requester):
    mission = drain(started(requester, "test_sleep", seconds=3600))
    response = operate(logged_in(requester), mission, "cancel", reason="ordered by mistake")
    assert said(response) == ["Mission cancelled; its pending decisions were withdrawn."]
    mission.refresh_from_db()
    assert mission.status == Mission.Status.CANCELLED
    assert mission.verdict == {
        "outcome": "cancelled",
        "by": "requester",
        "reason": "ordered by mistake",
    }


def test_nobody_operates_a_mission_they_may_not_see(requester, outsider):
    mission = drain(started(requester, "test_sleep", seconds=3600))
    assert operate(logged_in(outsider), mission, "cancel").status_code == 404


def test_operations_need_a_post_and_a_known_name(admin_user):
    mission = started(admin_user)
    client = logged_in(admin_user)
    url = reverse("missions:operate", args=[mission.id, "pause"])
    assert client.get(url).status_code == 405
    assert operate(client, mission, "explode").status_code == 404


def test_operations_need_the_csrf_token(admin_user):
    mission = started(admin_user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert operate(client, mission, "pause").status_code == 403
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PENDING
