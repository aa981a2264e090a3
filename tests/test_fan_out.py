"""`ctx.map`, driven in-process exactly as workers drive it: the mission's passes with
`drain`, each item's task with `map_item_run` (docs/authoring.md, "Parallel steps")."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from missions import fan_out
from missions.engine import mission_check_compatibility
from missions.fan_out import map_item_run, map_items_recover
from missions.models import MapItem, Mission
from missions.selectors import missions_stuck
from missions.services import mission_cancel, mission_retry, mission_start, missions_tick
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def start(**input) -> Mission:
    return drain(mission_start(type="test_map", input=input).mission)


def sent(mission: Mission) -> list[int]:
    """Items holding a slot and not yet taken: those whose task a worker would run next."""
    return list(
        MapItem.objects.filter(mission=mission, status="pending", enqueued_at__isnull=False)
        .order_by("index")
        .values_list("index", flat=True)
    )


def run_item(mission: Mission, index: int, worker: str = "item-worker") -> str:
    return map_item_run(mission_id=mission.id, step_name="check", index=index, worker=worker)


def run_all(mission: Mission) -> Mission:
    """Run the items' tasks and the mission's passes until nothing is left to do."""
    mission = drain(mission)
    for _ in range(100):
        indexes = sent(mission)
        if not indexes:
            missions_tick()  # due back-offs go back to the queue
            indexes = sent(mission)
        for index in indexes:
            run_item(mission, index)
        mission = drain(mission)
        if not indexes:
            return mission
    raise AssertionError("the map did not settle")


def runs(marker: Path) -> list[str]:
    return [line.split()[1] for line in marker.read_text().splitlines()] if marker.exists() else []


def test_results_come_back_in_input_order_from_a_closure(tmp_path):
    mission = start(count=5)
    assert (mission.status, mission.waiting_on) == ("waiting", "map")
    assert mission.waiting_detail == "parallel steps 'check': 0 of 5 done"
    for index in (4, 2):  # out of order, as workers finish
        assert run_item(mission, index) == "completed"
    mission.refresh_from_db()
    assert (mission.status, mission.waiting_detail) == (
        "waiting",
        "parallel steps 'check': 2 of 5 done",
    )

    mission = run_all(mission)

    assert mission.status == "succeeded", mission.error
    results = mission.verdict["results"]
    assert [r["item"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["value"] for r in results] == [100, 101, 102, 103, 104]  # the recorded offset
    assert [r["key"] for r in results] == [f"{mission.id}:check:{i}" for i in range(5)]
    check = mission.steps.get(name="check")
    assert (check.kind, check.status, check.result) == ("map", "completed", results)
    assert list(mission.steps.values_list("name", flat=True)) == ["offset", "check", "after"]
    assert set(MapItem.objects.filter(mission=mission).values_list("idempotency_key", flat=True))
    assert mission.observations.filter(kind="resumed", step_name="check").count() == 1


def test_no_more_than_max_parallel_items_hold_a_slot():
    mission = start(count=7, max_parallel=2)
    assert sent(mission) == [0, 1]
    run_item(mission, 1)
    assert sent(mission) == [0, 2]  # the freed slot went to the next pending item

    mission = run_all(mission)

    assert mission.status == "succeeded", mission.error
    assert max(r["holding"] for r in mission.verdict["results"]) <= 2


def test_recorded_items_never_run_again(tmp_path):
    marker = tmp_path / "runs.log"
    mission = start(count=3, marker=str(marker))
    run_item(mission, 0)
    assert run_item(mission, 0) == "skipped"  # a duplicate message
    mission = run_all(mission)
    assert mission.status == "succeeded"
    for index in range(3):  # nor after the mission replayed past the map
        assert run_item(mission, index) == "skipped"
    assert sorted(runs(marker)) == [f"{mission.id}:check:{i}" for i in range(3)]
    assert Group.objects.filter(name__startswith=f"{mission.id}:check:").count() == 3


def test_an_empty_map_returns_an_empty_list():
    mission = start(count=0)
    assert mission.status == "succeeded"
    assert mission.verdict["results"] == []


def test_a_failed_item_fails_the_map_naming_it_once_the_running_items_settle(tmp_path):
    marker, fail = tmp_path / "runs.log", tmp_path / "fail"
    fail.touch()
    mission = start(count=4, max_parallel=2, fail_index=1, fail_file=str(fail), marker=str(marker))

    slow = fan_out._take(mission.id, "check", 0, "slow-worker")  # item 0 runs meanwhile
    assert run_item(mission, 1) == "failed"  # NonRetryableError: no retry
    mission = drain(mission)
    assert mission.status == "waiting"  # item 0 is still running
    assert fan_out._run(slow, fan_out._capture(slow)) == "completed"  # its commit wakes it
    mission = drain(mission)

    assert mission.status == "failed"
    assert mission.error == "item 1 of 'check' failed: item 1 is bad"
    assert mission.steps.get(name="check").status == "failed"
    assert sorted(runs(marker)) == [f"{mission.id}:check:{i}" for i in (0, 1)]  # 2, 3 never ran

    # Retrying the mission runs the failed and the unrun items; the completed one stays.
    fail.unlink()
    mission_retry(mission=mission, by=None)
    mission = run_all(mission)
    assert mission.status == "succeeded", mission.error
    assert sorted(runs(marker)) == sorted([f"{mission.id}:check:{i}" for i in (0, 1, 1, 2, 3)])
    assert Group.objects.filter(name__startswith=f"{mission.id}:check:").count() == 4


def test_an_item_is_retried_with_the_maps_policy(tmp_path):
    marker = tmp_path / "runs.log"
    mission = start(count=2, flaky_times=1, marker=str(marker))
    assert run_item(mission, 0) == "retrying"
    item = MapItem.objects.get(mission=mission, index=0)
    assert (item.status, item.error) == ("retrying", "ConnectionError: flaky run 1")

    mission = run_all(mission)

    assert mission.status == "succeeded", mission.error
    assert list(MapItem.objects.filter(mission=mission).values_list("attempts", flat=True)) == [
        2,
        2,
    ]
    assert Group.objects.filter(name__startswith=f"{mission.id}:check:").count() == 2


def test_an_item_out_of_retries_fails_the_map(tmp_path):
    marker = tmp_path / "runs.log"
    mission = run_all(start(count=1, flaky_times=5, marker=str(marker)))
    assert mission.status == "failed"
    assert mission.error == (
        "item 0 of 'check' failed: ConnectionError: flaky run 3"
    )  # three attempts, as the policy says
    assert len(runs(marker)) == 3


def test_items_not_yet_running_are_not_run_after_a_failure(tmp_path):
    marker, fail = tmp_path / "runs.log", tmp_path / "fail"
    fail.touch()
    mission = start(count=3, max_parallel=2, fail_index=0, fail_file=str(fail), marker=str(marker))
    assert run_item(mission, 0) == "failed"
    assert drain(mission).status == "waiting"  # item 1 holds a slot: its message is out
    assert run_item(mission, 1) == "skipped"  # gives its slot up, which settles the map
    mission = drain(mission)
    assert (mission.status, mission.error) == ("failed", "item 0 of 'check' failed: item 0 is bad")
    assert runs(marker) == [f"{mission.id}:check:0"]


def test_a_cancelled_missions_items_are_not_run(tmp_path):
    marker = tmp_path / "runs.log"
    mission = start(count=3, marker=str(marker))
    mission_cancel(mission=mission, by=None)
    assert [run_item(mission, index) for index in range(3)] == ["skipped"] * 3
    assert runs(marker) == []
    assert not map_items_recover()  # nothing is sent again for a cancelled mission


def test_a_lost_message_and_a_dead_worker_are_recovered_by_the_scheduler(tmp_path):
    mission = start(count=2)
    long_ago = timezone.now() - timedelta(minutes=5)
    # Item 0: its message was lost. Item 1: its worker died mid-run (the lease ran out).
    MapItem.objects.filter(mission=mission, index=0).update(enqueued_at=long_ago)
    MapItem.objects.filter(mission=mission, index=1).update(
        status="running", lease_owner="dead", lease_expires_at=long_ago, enqueued_at=long_ago
    )
    assert "parallel steps 'check' are not moving" in dict(
        (str(m.id), reason) for m, reason in missions_stuck()
    ).get(str(mission.id), "")

    assert map_items_recover() == 2
    assert run_item(mission, 1, worker="survivor") == "completed"
    mission = run_all(mission)

    assert mission.status == "succeeded", mission.error
    assert MapItem.objects.get(mission=mission, index=1).attempts == 1  # the lost run + this
    assert not [m for m, _ in missions_stuck() if m.id == mission.id]


def test_the_pre_deploy_check_understands_a_waiting_map():
    mission = start(count=3)
    assert mission_check_compatibility(mission) is None
    Mission.objects.filter(id=mission.id).update(input={"count": 4})
    mission.refresh_from_db()
    assert mission_check_compatibility(mission) == (
        "mission code changed incompatibly: parallel steps 'check' were started with 3 items, "
        "the code now gives 4"
    )


def test_max_parallel_must_be_positive():
    mission = start(count=2, max_parallel=0)
    assert mission.status == "failed"
    assert "max_parallel must be a positive integer" in mission.error


def test_an_item_calling_a_ctx_step_fails_without_writing_it():
    mission = drain(mission_start(type="test_map_misuse", input={"steps": 1}).mission)
    assert run_item(mission, 0) == "failed"
    mission = drain(mission)
    assert mission.status == "failed"
    assert mission.error == (
        "item 0 of 'check' failed: 'check' called a ctx step or wait from inside an item; "
        "items may only read ctx.idempotency_key"
    )
    assert list(mission.steps.values_list("name", flat=True)) == ["check"]
