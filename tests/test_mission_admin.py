"""The missions admin: finding missions, reading checkpoints, cancel and retry actions."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from missions.models import Event, Mission
from missions.services import event_deliver
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:missions_mission_changelist"


def act(client: Client, action: str, *missions: Mission):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(m.id) for m in missions]},
        follow=True,
    )


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_changelist_filters_and_searches(admin_client, requester, admin_user):
    waiting = drain(started(requester, "test_sleep", seconds=3600))
    done = drain(started(admin_user))

    def listed(**query) -> set:
        text = admin_client.get(reverse(CHANGELIST), query).text
        return {m.id for m in (waiting, done) if str(m.id)[:8] in text}

    assert listed() == {waiting.id, done.id}
    assert listed(status__exact="waiting") == {waiting.id}
    assert listed(waiting_on__exact="timer") == {waiting.id}
    assert listed(type="test_count") == {done.id}
    assert listed(q="requester") == {waiting.id}
    assert listed(q=str(done.id)[:8]) == {done.id}
    assert listed(q=str(done.id)) == {done.id}


def test_the_change_page_shows_steps_and_observations_read_only(admin_client, admin_user):
    mission = drain(started(admin_user, steps=3))
    response = admin_client.get(reverse("admin:missions_mission_change", args=[mission.id]))
    assert response.status_code == 200
    text = response.text
    for name in ("n:0", "n:1", "n:2"):
        assert name in text
    assert "Started Counting" in text
    assert 'name="status"' not in text  # engine state is not editable
    assert reverse("missions:detail", args=[mission.id]) in text


def test_missions_are_neither_added_nor_deleted_by_hand(admin_client, admin_user):
    mission = started(admin_user)
    assert admin_client.get(reverse("admin:missions_mission_add")).status_code == 403
    delete = reverse("admin:missions_mission_delete", args=[mission.id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Mission.objects.filter(id=mission.id).exists()


def test_retry_failed_retries_only_failed_missions(admin_client, requester):
    failed = drain(started(requester, "test_refuse", order_id="A-1", amount="5000"))
    done = drain(started(requester))
    assert failed.status == Mission.Status.FAILED
    response = act(admin_client, "retry_failed", failed, done)
    failed.refresh_from_db()
    done.refresh_from_db()
    assert failed.status == Mission.Status.PENDING
    assert done.status == Mission.Status.SUCCEEDED
    assert said(response) == ["Skipped 1 missions that have not failed.", "Retried 1 missions."]


def test_cancel_selected_cancels_and_reports_each_refusal(admin_client, requester):
    waiting = drain(started(requester, "test_sleep", seconds=3600))
    done = drain(started(requester))
    response = act(admin_client, "cancel_selected", waiting, done)
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert waiting.status == Mission.Status.CANCELLED
    assert waiting.verdict["by"] == "admin"
    assert done.status == Mission.Status.SUCCEEDED
    messages = said(response)
    assert f"{done}: mission is succeeded" in messages[0]
    assert messages[1] == "Cancelled 1 missions."


def test_actions_need_the_change_permission(requester):
    from django.contrib.auth.models import Permission

    requester.is_staff = True
    requester.save()
    requester.user_permissions.add(Permission.objects.get(codename="view_mission"))
    waiting = drain(started(requester, "test_sleep", seconds=3600))
    client = Client()
    client.force_login(requester)
    act(client, "cancel_selected", waiting)
    waiting.refresh_from_db()
    assert waiting.status == Mission.Status.WAITING


def test_events_and_deliveries_are_read_only(admin_client, admin_user):
    event_deliver(event="shipped", key="A-1", payload={"carrier": "DHL"}, sent_by=admin_user)
    event = Event.objects.get()
    assert admin_client.get(reverse("admin:missions_event_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:missions_event_change", args=[event.id]))
    assert page.status_code == 200 and "DHL" in page.text
    assert admin_client.get(reverse("admin:missions_event_add")).status_code == 403
    assert admin_client.get(reverse("admin:missions_eventdelivery_add")).status_code == 403
    assert admin_client.get(reverse("admin:missions_eventdelivery_changelist")).status_code == 200


def test_the_admin_names_every_model_in_plain_english(admin_client):
    index = admin_client.get(reverse("admin:index")).text
    assert "Event deliveries" in index
    assert "deliverys" not in index.lower()


def test_steps_and_observations_have_their_own_read_only_lists(admin_client, admin_user):
    mission = drain(started(admin_user))
    step = mission.steps.first()
    observation = mission.observations.first()
    for name, args in (
        ("admin:missions_step_changelist", []),
        ("admin:missions_step_change", [step.id]),
        ("admin:observations_observation_changelist", []),
        ("admin:observations_observation_change", [observation.id]),
    ):
        assert admin_client.get(reverse(name, args=args)).status_code == 200, name
    assert admin_client.get(reverse("admin:observations_observation_add")).status_code == 403
    assert admin_client.get(reverse("admin:missions_step_add")).status_code == 403


START = "admin:missions_mission_start"


def test_an_operator_starts_a_mission_with_a_priority(admin_client, admin_user):
    page = admin_client.get(reverse(CHANGELIST))
    assert reverse(START) in page.text  # the changelist links to the form
    response = admin_client.post(
        reverse(START),
        {
            "type": "test_sleep",
            "title": "Nightly sleeper",
            "input": '{"seconds": 60}',
            "priority": 7,
        },
    )
    mission = Mission.objects.get(title="Nightly sleeper")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:missions_mission_change", args=[mission.id])
    assert (mission.type, mission.priority, mission.input) == ("test_sleep", 7, {"seconds": 60})
    assert mission.started_by == admin_user


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": '{"seconds": "soon"}', "priority": 0}, "seconds"),
        ({"input": "{not json", "priority": 0}, "Enter a valid JSON"),
        ({"input": "{}", "priority": 11}, "less than or equal to 10"),
    ],
)
def test_the_start_form_says_what_is_wrong_and_starts_nothing(admin_client, fields, message):
    response = admin_client.post(reverse(START), {"type": "test_sleep", **fields})
    assert response.status_code == 200
    assert message in response.text
    assert not Mission.objects.exists()


def test_starting_from_the_admin_needs_the_change_permission(requester):
    from django.contrib.auth.models import Permission

    requester.is_staff = True
    requester.save()
    requester.user_permissions.add(Permission.objects.get(codename="view_mission"))
    client = Client()
    client.force_login(requester)
    assert client.get(reverse(START)).status_code == 403
    response = client.post(reverse(START), {"type": "test_sleep", "input": "{}", "priority": 0})
    assert response.status_code == 403
    assert not Mission.objects.exists()
