"""Concurrency limits and priority (missions.concurrency), driven in-process: who is admitted,
who queues, in which order slots are handed on, and where people see a queued mission."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from missions.models import ConcurrencyLimit, Mission
from missions.selectors import missions_stuck
from missions.services import (
    MissionInputError,
    event_deliver,
    mission_cancel,
    mission_pause,
    mission_resume,
    mission_retry,
    mission_start,
    missions_tick,
)
from tests import missions_for_concurrency
from tests.support.api import api_client, fresh_throttles  # noqa: F401
from tests.support.engine import drain
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

LIMIT = missions_for_concurrency.LIMIT
QUEUED = Mission.WaitingOn.QUEUED


def start(user, type: str = "test_limited", *, priority: int = 0, **input) -> Mission:
    return mission_start(type=type, input=input, started_by=user, priority=priority).mission


def fresh(mission: Mission) -> Mission:
    mission.refresh_from_db()
    return mission


def holding(type: str = "test_limited") -> list[Mission]:
    return list(
        Mission.objects.filter(type=type, status__in=Mission.ACTIVE_STATUSES).exclude(
            waiting_on=QUEUED
        )
    )


def queued(type: str = "test_limited") -> list[Mission]:
    return list(Mission.objects.filter(type=type, status="waiting", waiting_on=QUEUED))


def fill(user) -> list[Mission]:
    """LIMIT missions admitted: every slot taken."""
    admitted = [start(user) for _ in range(LIMIT)]
    assert all(mission.status == "pending" for mission in admitted)
    return admitted


def test_missions_over_the_limit_queue_without_a_worker(requester):
    admitted = fill(requester)
    extra = [start(requester) for _ in range(3)]
    assert len(holding()) == LIMIT
    for mission in map(fresh, extra):
        assert (mission.status, mission.waiting_on) == ("waiting", "queued")
        assert mission.enqueued_at is None  # nothing was sent to the broker
        assert mission.waiting_detail == "a slot of Limited work (5 at once)"
        assert mission.observations.filter(kind="waiting").exists()
    row = ConcurrencyLimit.objects.get(mission_type="test_limited", key="")
    assert (row.limit, row.admissions) == (LIMIT, 0)  # none handed on from the queue yet
    # A finished mission's slot goes to the first queued one, in the same transaction.
    drain(admitted[0])
    assert fresh(admitted[0]).status == "succeeded"
    first = fresh(extra[0])
    assert (first.status, first.waiting_on) == ("running", "")
    assert first.enqueued_at is not None
    assert [fresh(m).status for m in extra[1:]] == ["waiting", "waiting"]
    assert len(holding()) == LIMIT


def test_a_slot_is_held_until_the_mission_is_final_and_counted_per_key(requester):
    first = start(requester, "test_per_customer", customer="C-1")
    second = start(requester, "test_per_customer", customer="C-1")
    other = start(requester, "test_per_customer", customer="C-2")
    assert first.status == "pending" and other.status == "pending"
    assert (second.status, second.waiting_on) == ("waiting", "queued")
    assert second.concurrency_key == "C-1"
    assert second.waiting_detail == "a slot of Refund for C-1 (1 at once)"
    # Waiting for its event, the first still holds C-1's slot.
    assert (drain(first).status, first.waiting_on) == ("waiting", "event")
    assert fresh(second).waiting_on == "queued"
    event_deliver(event="go", key="C-1")
    assert drain(first).status == "succeeded"
    assert (fresh(second).status, second.waiting_on) == ("running", "")
    assert set(ConcurrencyLimit.objects.values_list("key", flat=True)) == {"C-1", "C-2"}


def test_higher_priority_takes_the_free_slot_first_then_age(requester):
    admitted = fill(requester)
    older_low = start(requester, priority=0)
    high = start(requester, priority=5)
    younger_low = start(requester, priority=0)
    drain(admitted[0])
    assert fresh(high).status == "running"
    drain(admitted[1])
    assert fresh(older_low).status == "running"
    assert fresh(younger_low).status == "waiting"


def test_every_fifth_slot_goes_to_the_longest_waiting_so_none_starves(requester):
    admitted = fill(requester)
    starving = start(requester, priority=-10)
    highs = [start(requester, priority=10) for _ in range(6)]
    for mission in admitted[:4]:  # slots 1..4 handed on from the queue: by priority
        drain(mission)
    assert sum(fresh(m).status == "running" for m in highs) == 4
    assert fresh(starving).status == "waiting"
    drain(admitted[4])  # slot 5: the longest-waiting, whatever its priority
    assert fresh(starving).status == "running"
    assert sum(fresh(m).status == "running" for m in highs) == 4


def test_cancelling_frees_a_slot_and_a_queued_mission_can_be_cancelled(requester):
    admitted = fill(requester)
    first, second = start(requester), start(requester)
    mission_cancel(mission=second, by=requester)
    assert fresh(second).status == "cancelled"
    assert len(holding()) == LIMIT and fresh(first).status == "waiting"
    mission_cancel(mission=admitted[2], by=requester)
    assert fresh(first).status == "running"
    assert len(holding()) == LIMIT


def test_a_retried_mission_queues_again_when_the_slots_are_taken(requester, admin_user):
    failing = start(requester, fail=True)
    others = [start(requester) for _ in range(LIMIT - 1)]
    waiting = start(requester)
    assert drain(failing).status == "failed"
    assert fresh(waiting).status == "running"  # the failure freed its slot
    retried = mission_retry(mission=fresh(failing), by=admin_user)
    assert (retried.status, fresh(failing).waiting_on) == ("waiting", "queued")
    assert len(holding()) == LIMIT
    drain(others[0])
    assert fresh(failing).status == "running"
    assert drain(failing).status == "failed"  # asked to fail again; its slot is free again
    assert len(holding()) == LIMIT - 1


def test_a_queued_mission_paused_and_resumed_queues_again(requester, admin_user):
    fill(requester)
    extra = start(requester)
    mission_pause(mission=extra, by=admin_user)
    assert len(holding()) == LIMIT  # paused in the queue, it holds no slot
    resumed = mission_resume(mission=fresh(extra), by=admin_user)
    assert (resumed.status, resumed.waiting_on) == ("waiting", "queued")


def test_the_scheduler_admits_queued_missions_when_a_slot_is_free(requester):
    admitted = fill(requester)
    extra = start(requester)
    # A slot freed by a path that did not hand it on (a row changed by hand).
    Mission.objects.filter(id=admitted[0].id).update(status="succeeded")
    assert fresh(extra).status == "waiting"
    assert missions_tick()["admitted"] == 1
    assert fresh(extra).status == "running"
    assert missions_tick()["admitted"] == 0


def test_priority_is_checked_on_every_start(requester):
    for bad in (11, -11, True, "high", 1.5):
        with pytest.raises(MissionInputError) as refused:
            start(requester, priority=bad)
        assert "priority" in refused.value.errors
    assert not Mission.objects.exists()
    assert start(requester, priority=10).priority == 10


def test_a_child_mission_gets_the_priority_its_parent_asks_for(requester):
    parent = start(requester, "test_limited_parent", child_priority=7)
    drain(parent)
    child = Mission.objects.get(parent=parent)
    assert (child.type, child.priority) == ("test_limited", 7)


def test_the_api_takes_a_priority_and_shows_the_queue(requester):
    client = api_client(requester)
    for bad in (11, "high", None):
        response = client.post(
            "/api/missions/", {"type": "test_limited", "priority": bad}, format="json"
        )
        assert response.status_code == 400, response.content
        assert "priority" in response.json()["errors"]
    for _ in range(LIMIT):
        assert (
            client.post("/api/missions/", {"type": "test_limited"}, format="json").status_code
            == 201
        )
    low = client.post("/api/missions/", {"type": "test_limited"}, format="json").json()
    high = client.post(
        "/api/missions/", {"type": "test_limited", "priority": 3}, format="json"
    ).json()
    assert (high["priority"], high["status"], high["waiting_on"]) == (3, "waiting", "queued")
    assert high["queue"] == {"position": 1, "total": 2}
    again = client.get(f"/api/missions/{low['id']}/").json()
    assert again["queue"] == {"position": 2, "total": 2}
    assert again["waiting_detail"] == "a slot of Limited work (5 at once)"


def test_the_mission_page_rail_and_stuck_list_say_what_it_queues_for(admin_user):
    fill(admin_user)
    first, second = start(admin_user), start(admin_user)
    text = "Queued (2nd of 2) for a slot of Limited work (5 at once)"
    client = logged_in(admin_user)
    assert text in client.get(reverse("missions:detail", args=[second.id])).text
    assert text in client.get(reverse("observations:rail")).text
    long_ago = timezone.now() - timedelta(hours=1)
    Mission.objects.filter(id=first.id).update(waiting_since=long_ago)
    reasons = dict(missions_stuck())
    reason = reasons[Mission.objects.get(id=first.id)]
    assert reason.startswith("Queued (1st of 2) for a slot of Limited work (5 at once)")
    assert "the slots are held by: test_limited #" in reason


def test_the_admin_lists_each_limit_with_its_use(admin_user, requester):
    fill(requester)
    start(requester)
    start(requester, "test_per_customer", customer="C-9")
    page = logged_in(admin_user).get(reverse("admin:missions_concurrencylimit_changelist"))
    assert page.status_code == 200
    rows = {
        re.search(r'field-mission_type"><a [^>]*>([^<]+)</a>', line).group(1): line
        for line in page.text.split("<tr")
        if "field-mission_type" in line
    }
    assert '<td class="field-running">5</td>' in rows["test_limited"]
    assert '<td class="field-queued">1</td>' in rows["test_limited"]
    assert '<td class="field-key_or_all">C-9</td>' in rows["test_per_customer"]
