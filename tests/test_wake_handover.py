"""A mission woken by a worker's own commit runs next in that worker's task, without the
broker (missions.handover); and a map item's commit needs neither the mission's lock nor a
count of every item (missions.fan_out). The Celery tasks are called in-process, as a worker
process calls them; no worker consumes the broker here, so a woken mission that was only sent
stays where its wake left it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from missions.models import Mission
from missions.services import event_deliver, mission_start
from missions.tasks import advance_mission, run_map_item
from tests.support.engine import drain

# Real commits: a wake is handed over by the commit's on_commit hook.
pytestmark = pytest.mark.django_db(transaction=True)


def waiting_parent_and_child(key: str) -> tuple[Mission, Mission]:
    parent = drain(
        mission_start(
            type="test_parent",
            input={"children": 1, "child_type": "test_event", "child_input": {"key": key}},
        ).mission
    )
    child = drain(Mission.objects.get(parent=parent))
    assert (parent.waiting_on, child.waiting_on) == ("missions", "event")
    return parent, child


def run_tasks_until_final(mission: Mission) -> None:
    for _ in range(10):
        mission.refresh_from_db()
        if mission.is_final:
            return
        advance_mission(str(mission.id))
    raise AssertionError(f"{mission} did not finish")


def test_a_childs_end_runs_its_parents_next_pass_in_the_same_task():
    parent, child = waiting_parent_and_child("handover-1")
    event_deliver(event="shipped", key="handover-1", payload={"n": 1})

    run_tasks_until_final(child)

    parent.refresh_from_db()
    assert parent.status == "succeeded", parent.error  # no task of its own ran
    assert parent.verdict["statuses"] == ["succeeded"]
    assert parent.steps.get(name="children").status == "completed"


def test_outside_a_task_a_woken_parent_is_sent_through_the_broker():
    parent, child = waiting_parent_and_child("handover-2")
    event_deliver(event="shipped", key="handover-2", payload={"n": 2})

    drain(child)  # passes called directly, as the scheduler or a test would

    parent.refresh_from_db()
    assert (child.status, parent.status) == ("succeeded", "running")
    assert parent.steps.get(name="children").status == "waiting"  # its message is queued


def test_the_maps_last_item_runs_the_missions_next_pass_in_its_task():
    mission = drain(mission_start(type="test_map", input={"count": 3}).mission)
    assert mission.waiting_on == "map"

    for index in range(3):
        assert run_map_item(str(mission.id), "check", index) == "completed"

    mission.refresh_from_db()
    # The step after the map, and the verdict the code returns right after it, in this task.
    assert mission.status == "succeeded", mission.error
    check, after = mission.steps.get(name="check"), mission.steps.get(name="after")
    assert [r["item"] for r in check.result] == [0, 1, 2]
    assert (check.status, after.status, after.result) == ("completed", "completed", 3)
    assert mission.observations.filter(kind="resumed", step_name="check").count() == 1


def test_an_item_of_a_map_with_a_slot_for_each_takes_no_mission_lock_and_counts_nothing():
    mission = drain(mission_start(type="test_map", input={"count": 100}).mission)
    run_map_item(str(mission.id), "check", 1)  # the first item in a process replays the mission

    with CaptureQueriesContext(connection) as captured:
        assert run_map_item(str(mission.id), "check", 2) == "completed"

    statements = [query["sql"] for query in captured.captured_queries]
    # (The item's own function counts its siblings with COUNT(*); the engine must not count.)
    engine_wide = [
        sql for sql in statements if "FOR UPDATE" in sql or 'COUNT("missions_mapitem"' in sql
    ]
    assert not engine_wide, engine_wide
    mission.refresh_from_db()
    assert (mission.status, mission.waiting_on) == ("waiting", "map")
