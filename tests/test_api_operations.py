"""Cancel and retry through the API (docs/api.md)."""

import pytest

from tests.support.api import api_client, failed, fresh_throttles, grant  # noqa: F401
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


def post(user, mission, action: str, body: dict | None = None):
    return api_client(user).post(f"/api/missions/{mission.id}/{action}/", body or {}, format="json")


def test_the_requester_cancels_their_mission_with_a_reason(requester):
    mission = started(requester, "test_sleep", seconds=60)
    response = post(requester, mission, "cancel", {"reason": "ordered twice"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["verdict"] == {"outcome": "cancelled", "by": "requester", "reason": "ordered twice"}
    assert body["cancelled_by"] == "requester"
    assert body["finished_at"] is not None


def test_cancelling_a_finished_mission_is_a_409(requester):
    mission = drain(started(requester))
    response = post(requester, mission, "cancel")
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]


def test_an_operator_retries_a_failed_mission(requester, outsider):
    from missions.models import Mission

    mission = failed(requester)
    grant(outsider, "missions.change_mission")
    grant(outsider, "missions.view_mission")
    response = post(outsider, mission, "retry")
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["error"]) == ("pending", "")
    assert Mission.objects.get(id=mission.id).status == "pending"


def test_retrying_a_mission_that_has_not_failed_is_a_409(requester, admin_user):
    mission = started(requester)
    response = post(admin_user, mission, "retry")
    assert response.status_code == 409
    assert "failed" in response.json()["detail"]


def test_the_requester_may_not_retry(requester):
    mission = failed(requester)
    response = post(requester, mission, "retry")
    assert response.status_code == 403
    assert "missions.change_mission" in response.json()["detail"]


def test_a_bad_cancel_reason_is_a_400(requester):
    mission = started(requester)
    response = post(requester, mission, "cancel", {"reason": "x" * 301})
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]
