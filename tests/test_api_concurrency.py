"""Two identical requests at the same moment, each on its own database connection: one mission,
one event, and both callers get the same answer."""

import threading

import pytest
from django.db import connection

from missions.models import Event, Mission
from tests.support.api import api_client, fresh_throttles, grant  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 8


def at_once(path: str, body: dict, key: str, user) -> list:
    """POST the same request from two threads released together."""
    barrier = threading.Barrier(2)
    responses: list = [None, None]
    clients = [api_client(user), api_client(user)]

    def post(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = clients[index].post(
                path, body, format="json", HTTP_IDEMPOTENCY_KEY=key
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in responses), "a request did not finish"
    return responses


def test_two_concurrent_identical_starts_create_one_mission(requester):
    for round in range(ROUNDS):
        key = f"start-{round}"
        body = {"type": "test_count", "input": {"steps": round}}
        first, second = at_once("/api/missions/", body, key, requester)
        assert sorted([first.status_code, second.status_code]) == [200, 201], (
            first.json(),
            second.json(),
        )
        assert first.json()["id"] == second.json()["id"]
        assert Mission.objects.filter(idempotency_key=key).count() == 1


def test_two_concurrent_identical_events_are_one_event(requester):
    grant(requester, "missions.add_event")
    for round in range(ROUNDS):
        key = f"event-{round}"
        body = {"event": "shipped", "key": f"order-{round}", "payload": {"round": round}}
        first, second = at_once("/api/events/", body, key, requester)
        assert sorted([first.status_code, second.status_code]) == [200, 202]
        assert first.json()["id"] == second.json()["id"]
        assert Event.objects.filter(idempotency_key=key).count() == 1
