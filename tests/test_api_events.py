"""POST /api/events/: external events reach waiting missions, idempotently (docs/api.md)."""

import pytest

from missions.models import Event, Mission
from tests.support.api import api_client, fresh_throttles, grant, waiting_for_event  # noqa: F401
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


@pytest.fixture
def integrator(db):
    from tests.conftest import make_user

    user = make_user("integrator")
    grant(user, "missions.add_event")
    return user


def send(user, body: dict, key: str = ""):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api_client(user).post("/api/events/", body, format="json", **headers)


def test_it_wakes_the_mission_waiting_for_the_event(requester, integrator):
    mission = waiting_for_event(requester, "order-1")
    other = waiting_for_event(requester, "order-2")
    response = send(integrator, {"event": "shipped", "key": "order-1", "payload": {"by": "DHL"}})
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["delivered_to"] == [str(mission.id)]
    assert (body["event"], body["key"], body["created"]) == ("shipped", "order-1", True)
    assert drain(mission).verdict == {"outcome": "received", "payload": {"by": "DHL"}}
    other.refresh_from_db()
    assert other.status == "waiting"


def test_an_event_nobody_waits_for_is_kept_for_the_first_wait(requester, integrator):
    response = send(integrator, {"event": "shipped", "key": "order-9", "payload": 42})
    assert (response.status_code, response.json()["delivered_to"]) == (202, [])
    mission = drain(started(requester, "test_event", key="order-9"))
    assert mission.verdict == {"outcome": "received", "payload": 42}


def test_the_same_key_and_body_return_the_first_answer(requester, integrator):
    mission = waiting_for_event(requester, "order-3")
    body = {"event": "shipped", "key": "order-3", "payload": {"n": 1}}
    first = send(integrator, body, key="evt-1")
    again = send(integrator, body, key="evt-1")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["delivered_to"] == [str(mission.id)]
    assert again.json()["created"] is False
    assert Event.objects.count() == 1


def test_the_same_key_with_another_body_is_a_409(integrator):
    assert send(integrator, {"event": "shipped", "key": "a"}, key="evt-2").status_code == 202
    response = send(integrator, {"event": "shipped", "key": "b"}, key="evt-2")
    assert response.status_code == 409
    assert "evt-2" in response.json()["detail"]
    assert Event.objects.count() == 1


def test_only_holders_of_the_add_event_permission_may_send(requester, supervisor):
    for user in (requester, supervisor):
        response = send(user, {"event": "shipped", "key": "x"})
        assert response.status_code == 403
        assert "missions.add_event" in response.json()["detail"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [({"key": "k"}, "event"), ({"event": ""}, "event"), ({"event": "e", "key": "k" * 201}, "key")],
)
def test_a_malformed_event_is_a_400(integrator, body, field):
    response = send(integrator, body)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_delivered_event_shows_on_the_mission_rail(requester, integrator):
    mission = waiting_for_event(requester, "order-5")
    send(integrator, {"event": "shipped", "key": "order-5"})
    assert Mission.objects.get(id=mission.id).observations.filter(kind="event_received").exists()
