"""Child missions with real worker processes on PostgreSQL + Redis: kill -9 while a parent
starts its children, and a child's end waking its parent with no scheduler to poll."""

import signal

import pytest

from missions.models import Mission
from missions.services import event_deliver, mission_start
from tests.support.processes import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.services,
    pytest.mark.production,
]

CHILDREN = 20


def status_of(mission: Mission) -> Mission:
    mission.refresh_from_db()
    return mission


def finished(mission: Mission):
    return lambda: status_of(mission).is_final and mission


def test_a_worker_killed_while_starting_children_starts_none_twice(processes):
    victim = processes.worker("victim")
    processes.scheduler()
    parent = mission_start(
        type="test_parent",
        input={"children": CHILDREN, "child_type": "test_count", "child_input": {"steps": 3}},
    ).mission
    children = Mission.objects.filter(parent=parent)
    eventually(lambda: children.count() >= 4, what="the first children to start")

    processes.kill(victim, signal.SIGKILL)  # mid-way through the starts
    started_when_killed = children.count()
    processes.worker("survivor")
    eventually(finished(parent), what="the parent's verdict after recovery", attempts=1800)

    assert parent.status == "succeeded", processes.logs()
    assert started_when_killed < CHILDREN, "the kill came after every start: nothing tested"
    assert parent.verdict["statuses"] == ["succeeded"] * CHILDREN
    steps = sorted(children.values_list("parent_step", flat=True))
    assert steps == sorted(f"child:{i}" for i in range(CHILDREN))  # each started exactly once
    recorded = list(parent.steps.filter(kind="child").values_list("result", flat=True))
    assert sorted(recorded) == sorted(str(i) for i in children.values_list("id", flat=True))
    assert Mission.objects.filter(type="test_count").count() == CHILDREN


def test_a_childs_end_wakes_its_parent_without_the_scheduler(processes):
    # No scheduler runs, and the workers' tick is an hour: only the child's end can wake it.
    processes.worker("w", STUDIOX_TICK_SECONDS="3600")
    parent = mission_start(
        type="test_parent",
        input={"children": 1, "child_type": "test_event", "child_input": {"key": "wake-1"}},
    ).mission
    eventually(lambda: status_of(parent).waiting_on == "missions", what="the parent's wait")
    child = Mission.objects.get(parent=parent)
    eventually(lambda: status_of(child).waiting_on == "event", what="the child's wait")

    event_deliver(event="shipped", key="wake-1", payload={"n": 1})
    eventually(finished(parent), what="the parent, woken by its child's end")
    assert parent.status == "succeeded", processes.logs()
    assert parent.verdict["statuses"] == ["succeeded"]
