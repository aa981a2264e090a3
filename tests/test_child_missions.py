"""Child missions (docs/authoring.md): ctx.start_mission and ctx.wait_for_missions, driven
in-process exactly as a worker drives them; the API and operator views of parent and children."""

from datetime import timedelta

import pytest
from django.utils import timezone
from pydantic import BaseModel

from decisions.models import Decision
from missions import engine
from missions.engine import mission_advance, mission_check_compatibility
from missions.models import Mission, Step
from missions.runtime import mission
from missions.selectors import missions_stuck
from missions.services import (
    event_deliver,
    mission_cancel,
    mission_pause,
    mission_retry,
    mission_start,
    missions_tick,
)
from tests.support.api import api_client, fresh_throttles  # noqa: F401
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


def children_of(parent: Mission) -> list[Mission]:
    return list(Mission.objects.filter(parent=parent).order_by("parent_step"))


def finish_children(parent: Mission) -> None:
    for child in children_of(parent):
        drain(child)


def test_children_are_started_once_and_inherit_the_requester(requester):
    parent = drain(started(requester, "test_parent", children=3))
    assert (parent.status, parent.waiting_on) == ("waiting", "missions")
    children = children_of(parent)
    assert [child.parent_step for child in children] == ["child:0", "child:1", "child:2"]
    assert all(child.started_by == requester for child in children)
    assert all(child.status == "pending" for child in children)
    assert [child.title for child in children] == ["Child 0", "Child 1", "Child 2"]
    # Every replay of the parent returns the recorded ids and starts nothing more.
    for _ in range(3):
        engine._step_cache.clear()
        Mission.objects.filter(id=parent.id).update(status="running")
        drain(parent)
    assert len(children_of(parent)) == 3
    recorded = list(parent.steps.filter(kind="child").values_list("result", flat=True))
    assert recorded == [str(child.id) for child in children]


class Crash(BaseException):
    """The worker dies between creating the child and committing the checkpoint."""


def test_a_crash_between_start_and_checkpoint_starts_no_second_child(requester, monkeypatch):
    parent = started(requester, "test_parent", children=2)
    real_write = engine.MissionContext._write
    crashes = []

    def dies_once(self, checkpoint, *, fast_only=False):
        if checkpoint.step is not None and checkpoint.step.kind == "child" and not crashes:
            crashes.append(Mission.objects.filter(parent=parent).count())
            raise Crash
        return real_write(self, checkpoint, fast_only=fast_only)

    monkeypatch.setattr(engine.MissionContext, "_write", dies_once)
    with pytest.raises(Crash):
        mission_advance(mission_id=parent.id, worker="doomed")
    assert crashes == [1]  # the child's row existed inside the checkpoint's transaction
    assert not Mission.objects.filter(parent=parent).exists()  # and went with it
    Mission.objects.filter(id=parent.id).update(lease_expires_at=timezone.now())
    engine._step_cache.clear()
    parent = drain(parent)
    assert len(children_of(parent)) == 2


def test_a_child_started_before_its_checkpoint_was_lost_is_the_one_returned(requester):
    parent = started(requester, "test_parent", children=1)
    # As if a checkpoint had committed the child's row but not the step (the two share one
    # transaction, so only a bug could): the step must still find that child.
    orphan = mission_start(
        type="test_count", input={"steps": 1}, parent=parent, parent_step="child:0"
    ).mission
    parent = drain(parent)
    assert children_of(parent) == [orphan]
    assert parent.steps.get(name="child:0").result == str(orphan.id)


def test_results_come_in_order_and_a_failed_child_does_not_fail_the_parent(requester):
    parent = drain(started(requester, "test_parent", children=3, failing_child=1))
    finish_children(parent)
    parent = drain(parent)
    assert parent.status == "succeeded", parent.error
    assert parent.verdict["outcome"] == "some_did_not"
    assert parent.verdict["statuses"] == ["succeeded", "failed", "succeeded"]
    results = parent.steps.get(name="children").result
    children = children_of(parent)
    assert [result["id"] for result in results] == [str(child.id) for child in children]
    assert results[1] == {
        "id": str(children[1].id),
        "type": "test_refuse",
        "status": "failed",
        "outcome": "",
        "summary": "",
        "verdict": None,
        "error": "refund of 5000 exceeds the limit",
    }
    assert results[0]["verdict"] == {"outcome": "counted", "total": 1}
    assert results[0]["outcome"] == "counted"


def test_a_childs_end_wakes_its_parent_in_the_same_transaction(requester):
    parent = drain(started(requester, "test_parent", children=2))
    first, second = children_of(parent)
    drain(first)
    parent.refresh_from_db()
    assert parent.status == "running"  # woken: no scheduler pass was needed
    parent = drain(parent)  # one child still runs: back to waiting, for it alone
    assert (parent.status, parent.waiting_on) == ("waiting", "missions")
    assert "1 of 2 missions" in parent.waiting_detail
    drain(second)
    parent.refresh_from_db()
    assert parent.status == "running"
    assert drain(parent).status == "succeeded"


def test_the_scheduler_wakes_a_parent_whose_wake_up_was_lost(requester):
    parent = drain(started(requester, "test_parent", children=1))
    child = drain(children_of(parent)[0])
    assert child.status == "succeeded"
    Mission.objects.filter(id=parent.id).update(  # as if the wake-up had been lost
        status="waiting", updated_at=child.finished_at - timedelta(seconds=1)
    )
    assert missions_tick()["missions"] == 1
    assert drain(parent).status == "succeeded"


def test_a_wait_for_missions_times_out_with_where_each_stands(requester):
    parent = drain(
        started(
            requester,
            "test_parent",
            children=1,
            child_type="test_event",
            child_input={"key": "never"},
            timeout_seconds=60,
        )
    )
    drain(children_of(parent)[0])
    Mission.objects.filter(id=parent.id).update(wake_at=timezone.now())
    step = parent.steps.get(name="children")
    step.wait["until"] = timezone.now().isoformat()
    step.save(update_fields=["wait"])
    engine._step_cache.clear()
    assert missions_tick()["woken"] == 1
    parent = drain(parent)
    assert parent.verdict["statuses"] == ["waiting"]


def test_cancelling_a_parent_cancels_its_unfinished_children_and_their_decisions(
    requester, admin_user
):
    parent = drain(
        started(requester, "test_parent", children=2, child_type="test_approval", child_input={})
    )
    finish_children(parent)
    assert Decision.objects.filter(status="pending").count() == 2
    mission_cancel(mission=parent, by=admin_user, reason="no longer needed")
    assert {child.status for child in children_of(parent)} == {"cancelled"}
    assert children_of(parent)[0].verdict["reason"] == "its parent mission was cancelled"
    assert not Decision.objects.filter(status="pending").exists()
    assert Decision.objects.filter(status="withdrawn").count() == 2
    parent.refresh_from_db()
    assert parent.status == "cancelled"


def test_a_finished_child_is_not_cancelled_with_its_parent(requester, admin_user):
    parent = drain(started(requester, "test_parent", children=2))
    done = drain(children_of(parent)[0])
    mission_cancel(mission=parent, by=admin_user)
    done.refresh_from_db()
    assert done.status == "succeeded"


def test_retrying_a_failed_parent_does_not_restart_its_succeeded_children(
    requester, admin_user, tmp_path
):
    marker = tmp_path / "after"
    parent = drain(started(requester, "test_parent", children=2, marker=str(marker), fail_times=1))
    finish_children(parent)
    parent = drain(parent)
    assert parent.status == "failed"
    before = {child.id: child.finished_at for child in children_of(parent)}
    mission_retry(mission=parent, by=admin_user)
    parent = drain(parent)
    assert parent.status == "succeeded", parent.error
    after = {child.id: child.finished_at for child in children_of(parent)}
    assert after == before
    assert Mission.objects.filter(type="test_count").count() == 2


def test_bad_child_input_fails_the_parent_clearly(requester):
    parent = drain(
        started(requester, "test_parent", children=1, child_type="test_count", child_input={})
    )
    assert parent.status == "failed"
    assert "could not start a 'test_count' mission: invalid mission input" in parent.error
    assert "steps" in parent.error
    assert parent.steps.get(name="child:0").status == "failed"
    assert not Mission.objects.filter(parent=parent).exists()


class StrangerInput(BaseModel):
    id: str


@mission("test_waits_for_a_stranger", version=1, input=StrangerInput)
def waits_for_a_stranger(ctx, data: StrangerInput) -> dict:
    return {"results": ctx.wait_for_missions("others", [data.id])}


def test_only_children_may_be_waited_for(requester):
    stranger = started(requester, "test_count", steps=1)
    parent = drain(started(requester, "test_waits_for_a_stranger", id=str(stranger.id)))
    assert parent.status == "failed"
    assert f"mission {stranger.id} is not a child of this mission" in parent.error


def test_the_deploy_check_replays_child_steps_without_starting_any(requester):
    parent = drain(started(requester, "test_parent", children=2))
    assert mission_check_compatibility(parent) is None
    assert len(children_of(parent)) == 2
    Step.objects.filter(mission=parent, name="child:1").update(name="renamed")
    problem = mission_check_compatibility(parent)
    assert problem and "mission code changed incompatibly" in problem
    assert len(children_of(parent)) == 2


def test_missions_stuck_explains_a_parent_waiting_on_children(requester, admin_user):
    parent = drain(
        started(
            requester,
            "test_parent",
            children=2,
            child_type="test_event",
            child_input={"key": "k-stuck"},
        )
    )
    first, second = children_of(parent)
    drain(first)
    mission_pause(mission=second, by=admin_user)
    Mission.objects.filter(id=parent.id).update(waiting_since=timezone.now() - timedelta(hours=2))
    reasons = dict(missions_stuck())
    reason = reasons[Mission.objects.get(id=parent.id)]
    assert "waiting in 'children' for child missions" in reason
    assert f"test_event #{str(first.id)[:8]} is waiting, waiting for event 'shipped'" in reason
    assert f"test_event #{str(second.id)[:8]} is paused by an operator" in reason
    event_deliver(event="shipped", key="k-stuck")  # the first child moves on


def test_the_api_shows_parent_and_children_and_filters_by_parent(requester):
    parent = drain(started(requester, "test_parent", children=2, failing_child=1))
    first, second = children_of(parent)
    drain(second)
    other = started(requester, "test_count", steps=1)
    client = api_client(requester)

    body = client.get(f"/api/missions/{parent.id}/").json()
    assert body["parent"] is None
    blank = {"outcome": "", "summary": "", "verdict": None}
    assert body["children"] == [
        {"id": str(first.id), "type": "test_count", "status": "pending", **blank},
        {"id": str(second.id), "type": "test_refuse", "status": "failed", **blank},
    ]
    child = client.get(f"/api/missions/{first.id}/").json()
    assert (child["parent"], child["children"]) == (str(parent.id), [])

    listed = client.get(f"/api/missions/?parent={parent.id}").json()["results"]
    assert {item["id"] for item in listed} == {str(first.id), str(second.id)}
    assert str(other.id) not in {item["id"] for item in listed}
    refused = client.get("/api/missions/?parent=not-a-mission")
    assert refused.status_code == 400
    assert "parent" in refused.json()["errors"]
