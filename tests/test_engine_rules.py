"""Engine rules driven in-process exactly as a worker drives them (docs/concepts.md)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from pydantic import BaseModel

from missions import engine
from missions.engine import Outcome, mission_advance
from missions.lease import lease_acquire
from missions.models import Mission, Step
from missions.runtime import _registry, mission
from missions.services import (
    MissionConflict,
    MissionInputError,
    UnknownMissionType,
    mission_pause,
    mission_resume,
    mission_retry,
    mission_start,
    missions_tick,
)
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def start(type: str, **input) -> Mission:
    return mission_start(type=type, input=input).mission


def test_replay_runs_no_completed_step_again(tmp_path):
    marker = tmp_path / "effects.log"
    mission = drain(start("test_effects", marker=str(marker)))
    assert mission.status == "succeeded"
    assert marker.read_text().count("first k1") == 1
    # One task per step: every advance replayed the steps before it from their records.
    assert [s.attempts for s in mission.steps.all()] == [1, 1, 1]


def test_each_step_is_checkpointed_before_the_next_starts():
    mission = start("test_count", steps=3)
    assert mission_advance(mission_id=mission.id) == Outcome.CONTINUE
    assert list(mission.steps.values_list("name", "status")) == [("n:0", "completed")]
    mission.refresh_from_db()
    assert (mission.status, mission.step_count, mission.lease_owner) == ("running", 1, "")


def test_bad_input_is_refused_with_field_errors():
    with pytest.raises(MissionInputError) as refused:
        mission_start(type="test_refuse", input={"order_id": "A-1", "amount": "-5"})
    assert "amount" in refused.value.errors
    with pytest.raises(MissionInputError) as missing:
        mission_start(type="test_refuse", input={})
    assert set(missing.value.errors) == {"order_id", "amount"}
    assert not Mission.objects.exists()


def test_an_unknown_type_is_refused():
    with pytest.raises(UnknownMissionType, match="unknown mission type 'nope'"):
        mission_start(type="nope", input={})


def test_an_idempotency_key_returns_the_same_mission(requester):
    first = mission_start(
        type="test_count", input={"steps": 1}, started_by=requester, idempotency_key="k-1"
    )
    again = mission_start(
        type="test_count", input={"steps": 1}, started_by=requester, idempotency_key="k-1"
    )
    assert first.created and not again.created
    assert first.mission.id == again.mission.id
    with pytest.raises(MissionConflict, match="k-1"):
        mission_start(
            type="test_count", input={"steps": 2}, started_by=requester, idempotency_key="k-1"
        )


def test_non_retryable_error_fails_the_mission_with_its_message():
    mission = drain(start("test_refuse", order_id="A-1", amount="5000"))
    assert mission.status == "failed"
    assert mission.error == "refund of 5000 exceeds the limit"
    assert mission.observations.filter(kind="failed").exists()


def test_a_failed_missions_current_step_is_the_step_that_failed(tmp_path):
    marker = tmp_path / "attempts"
    mission = drain(start("test_flaky", marker=str(marker), fail_times=3, max_attempts=1))
    assert mission.status == "failed"
    assert mission.current_step == "call"


def test_retries_back_off_then_fail_then_an_operator_retry_succeeds(tmp_path, admin_user):
    marker = tmp_path / "attempts"
    mission = drain(start("test_flaky", marker=str(marker), fail_times=3, max_attempts=2))
    assert (mission.status, mission.waiting_on) == ("waiting", "retry")
    step = mission.steps.get(name="call")
    assert (step.status, step.attempts) == ("retrying", 1)
    assert "upstream unavailable" in step.error
    assert missions_tick()["woken"] == 1  # back-off of 0 s is due at once
    mission = drain(mission)
    assert mission.status == "failed"
    assert "failed after 2 attempts" in mission.error
    assert mission.observations.filter(kind="retrying").count() == 1

    mission_retry(mission=mission, by=admin_user)
    mission = drain(mission)
    assert mission.status == "waiting"  # third attempt failed; the fresh budget allows one more
    missions_tick()
    mission = drain(mission)
    assert mission.status == "succeeded", mission.error
    assert mission.steps.get(name="call").attempts == 4
    assert marker.read_text().count("attempt") == 4


def test_a_retry_of_a_mission_that_is_not_failed_is_a_conflict(admin_user):
    mission = start("test_count", steps=1)
    with pytest.raises(MissionConflict, match="mission is pending"):
        mission_retry(mission=mission, by=admin_user)


def test_an_oversized_step_result_fails_the_step_clearly(settings):
    settings.STUDIOX_MAX_STEP_RESULT_BYTES = 1000
    mission = drain(start("test_huge", size=5000))
    assert mission.status == "failed"
    assert "over the limit of 1000 bytes" in mission.error
    assert mission.steps.get(name="big").status == "failed"


def test_a_stale_worker_cannot_commit_over_a_newer_one():
    mission = start("test_count", steps=2)
    stale = lease_acquire(mission.id, "old-worker")
    assert stale is not None
    Mission.objects.filter(id=mission.id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert mission_advance(mission_id=mission.id, worker="new-worker") == Outcome.CONTINUE
    # The old worker wakes up and tries to checkpoint with its old fencing token.
    ctx = engine.MissionContext(stale, _registry["test_count"][1], [], deadline=0)
    with pytest.raises(engine.StaleLease):
        ctx.step("n:0", lambda: 99)
    assert list(Step.objects.filter(mission=mission).values_list("name", "result")) == [("n:0", 1)]


def test_a_leased_mission_is_not_advanced_by_a_second_delivery():
    mission = start("test_count", steps=2)
    assert lease_acquire(mission.id, "busy-worker") is not None
    assert mission_advance(mission_id=mission.id, worker="duplicate") == Outcome.SKIPPED
    assert not Step.objects.filter(mission=mission).exists()


def test_a_duplicate_advance_after_the_step_runs_the_next_step_not_the_same_one():
    mission = start("test_count", steps=2)
    assert mission_advance(mission_id=mission.id) == Outcome.CONTINUE
    # The second step, and the verdict the code returns right after it, in the same task.
    assert mission_advance(mission_id=mission.id) == Outcome.FINISHED
    assert mission_advance(mission_id=mission.id) == Outcome.SKIPPED
    assert [s.attempts for s in mission.steps.all()] == [1, 1]


def test_a_worker_lost_too_often_fails_the_step_clearly(settings):
    settings.STUDIOX_MAX_WORKER_LOSSES = 2
    mission = start("test_count", steps=1)
    for _ in range(3):  # three workers take the lease and die without releasing it
        lease_acquire(mission.id, "doomed")
        Mission.objects.filter(id=mission.id).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
    mission = drain(mission)
    assert mission.status == "failed"
    assert (
        "step 'n:0' was interrupted 2 times" in mission.error
        or "interrupted 3 times" in mission.error
    )


def test_a_timer_is_a_row_and_the_scheduler_wakes_it():
    mission = drain(start("test_sleep", seconds=3600))
    assert (mission.status, mission.waiting_on) == ("waiting", "timer")
    assert mission.wake_at > timezone.now() + timedelta(minutes=59)
    assert missions_tick()["woken"] == 0
    Step.objects.filter(mission=mission, name="nap").update(
        wait={"until": timezone.now().isoformat()}
    )
    Mission.objects.filter(id=mission.id).update(wake_at=timezone.now())
    engine._step_cache.clear()  # the test moved the due time behind the worker's back
    assert missions_tick()["woken"] == 1
    mission = drain(mission)
    assert mission.status == "succeeded"


def test_pause_holds_a_mission_and_resume_continues_it(admin_user):
    mission = start("test_count", steps=2)
    mission_advance(mission_id=mission.id)
    mission_pause(mission=mission, by=admin_user)
    assert mission_advance(mission_id=mission.id) == Outcome.SKIPPED
    with pytest.raises(MissionConflict):
        mission_pause(mission=mission, by=admin_user)
    mission_resume(mission=mission, by=admin_user)
    mission = drain(mission)
    assert mission.status == "succeeded"
    kinds = list(mission.observations.values_list("kind", flat=True))
    assert "paused" in kinds and "resumed" in kinds


class ChangingInput(BaseModel):
    pass


def test_an_incompatible_code_change_stops_the_mission_naming_both_steps():
    def first_version(ctx, data):
        ctx.step("lookup", lambda: 1)
        ctx.sleep("wait", timedelta(hours=1))
        return {"outcome": "v1"}

    def changed_version(ctx, data):
        ctx.step("lookup", lambda: 1)
        ctx.step("new_check", lambda: 2)
        return {"outcome": "v2"}

    mission("test_changing", version=1, input=ChangingInput)(first_version)
    try:
        m = drain(start("test_changing"))
        assert m.status == "waiting"
        _registry["test_changing"][1] = _registry["test_changing"][1].__class__(
            name="test_changing",
            version=1,
            title="Changing",
            fn=changed_version,
            input_model=ChangingInput,
        )
        Mission.objects.filter(id=m.id).update(status="running")
        m = drain(m)
        assert m.status == "failed"
        assert "mission code changed incompatibly" in m.error
        assert "'new_check'" in m.error and "'wait'" in m.error
    finally:
        _registry.pop("test_changing", None)


def test_ctx_now_is_replay_safe():
    seen = []

    def clocked(ctx, data):
        seen.append(ctx.now())
        ctx.step("a", lambda: 1)
        seen.append(ctx.now())
        ctx.step("b", lambda: 2)
        seen.append(ctx.now())
        return {"outcome": "ok"}

    mission("test_clock", version=1, input=ChangingInput)(clocked)
    try:
        m = drain(start("test_clock"))
        assert m.status == "succeeded"
        # Two passes (a, then b); the second replays a and reads what the first read.
        first_pass, second_pass = seen[:2], seen[2:4]
        assert first_pass == second_pass == [m.created_at, m.steps.get(name="a").finished_at]
        assert seen[4] == m.steps.get(name="b").finished_at
    finally:
        _registry.pop("test_clock", None)


def test_the_step_path_runs_a_bounded_number_of_queries(django_assert_max_num_queries):
    m = start("test_count", steps=30)
    for _ in range(20):
        mission_advance(mission_id=m.id)
    # Step 21 of 30: the cost does not grow with the steps before it (cached replay).
    with django_assert_max_num_queries(8):
        assert mission_advance(mission_id=m.id) == Outcome.CONTINUE
    assert connection.vendor in ("sqlite", "postgresql")


def test_cancel_during_a_wait_stops_the_mission_for_good(admin_user):
    from missions.services import event_deliver, mission_cancel

    mission = drain(start("test_event", key="c-1"))
    assert mission.waiting_on == "event"
    mission_cancel(mission=mission, by=admin_user, reason="no longer needed")
    assert event_deliver(event="shipped", key="c-1").delivered_to == []
    assert mission_advance(mission_id=mission.id) == Outcome.SKIPPED
    mission.refresh_from_db()
    assert mission.status == "cancelled"
    assert mission.verdict == {"outcome": "cancelled", "by": "admin", "reason": "no longer needed"}
    with pytest.raises(MissionConflict, match="mission is cancelled"):
        mission_cancel(mission=mission, by=admin_user)


def recorded(mission: Mission, step_name: str) -> tuple[Step, list[str]]:
    step = mission.steps.get(name=step_name)
    kinds = list(
        mission.observations.filter(step_name=step_name)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    return step, kinds


def test_a_wait_woken_by_an_event_is_checkpointed_like_any_completed_step():
    from missions.services import event_deliver

    mission = drain(start("test_event", key="w-1"))
    steps_before = mission.step_count
    event_deliver(event="shipped", key="w-1", payload={"carrier": "DHL"})
    mission = drain(mission)

    assert mission.verdict == {"outcome": "received", "payload": {"carrier": "DHL"}}
    step, kinds = recorded(mission, "shipment")
    assert (step.status, step.result, step.attempts) == ("completed", {"carrier": "DHL"}, 1)
    assert step.finished_at >= step.started_at
    assert kinds == ["waiting", "event_received", "step_completed", "resumed"]
    assert mission.step_count == steps_before + 1
    assert (mission.waiting_on, mission.waiting_event, mission.wake_at) == ("", "", None)


def test_a_wait_woken_by_a_decision_is_checkpointed_like_any_completed_step(requester, supervisor):
    from decisions.services import decision_decide

    mission = drain(mission_start(type="test_approval", input={}, started_by=requester).mission)
    decision_decide(
        decision=mission.decisions.get(), user=supervisor, outcome="approved", comment="ok"
    )
    mission = drain(mission)

    assert mission.verdict == {"outcome": "approved", "by": "supervisor", "comment": "ok"}
    step, kinds = recorded(mission, "supervisor_approval")
    assert (step.status, step.result["outcome"], step.result["comment"]) == (
        "completed",
        "approved",
        "ok",
    )
    assert kinds[-2:] == ["step_completed", "resumed"]
    assert (mission.waiting_on, mission.wake_at) == ("", None)


def test_a_lease_taken_over_from_a_dead_worker_counts_the_loss():
    mission = start("test_count", steps=1)
    first = lease_acquire(mission.id, "first")
    assert (first.lease_owner, first.lost_leases, first.status) == ("first", 0, "running")
    assert lease_acquire(mission.id, "second") is None  # the first one's lease is live
    Mission.objects.filter(id=mission.id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    second = lease_acquire(mission.id, "second")
    assert (second.lease_owner, second.lost_leases) == ("second", 1)
    assert second.fencing_token == first.fencing_token + 1
    assert second.input["steps"] == 1  # JSON fields arrive decoded, as from the ORM


def test_an_event_goes_to_the_missions_waiting_for_it_and_is_not_taken_again():
    from missions.models import Event
    from missions.services import event_deliver

    first = drain(start("test_event", key="k-1"))
    result = event_deliver(event="shipped", key="k-1", payload={"n": 1})
    assert result.delivered_to == [str(first.id)]
    assert Event.objects.get(id=result.event.id).delivered_at is not None
    assert drain(first).verdict == {"outcome": "received", "payload": {"n": 1}}
    later = drain(start("test_event", key="k-1"))
    assert later.waiting_on == "event"  # the delivered event was not taken a second time

    kept = event_deliver(event="shipped", key="k-2", payload={"n": 2})
    assert kept.delivered_to == [] and kept.event.delivered_at is None
    assert drain(start("test_event", key="k-2")).verdict["payload"] == {"n": 2}


@pytest.mark.parametrize("payload", ["a text", 7, None, [1, {"carrier": "DHL"}]])
def test_any_json_payload_reaches_the_woken_wait_unchanged(payload):
    from missions.services import event_deliver

    mission = drain(start("test_event", key="any"))
    event_deliver(event="shipped", key="any", payload=payload)
    assert drain(mission).verdict["payload"] == payload


def test_a_pass_reads_again_only_the_steps_after_those_it_saw_completed():
    """The worker's cache counts the leading steps it saw completed: a wait still open stays
    outside that count until a pass sees it completed, and nothing before it is read again."""
    from missions.services import event_deliver

    waiting = start("test_event", key="seen-1")
    assert drain(waiting).status == Mission.Status.WAITING
    seen = engine._step_cache[str(waiting.id)]
    assert [step.status for step in seen.steps] == ["completed", "waiting"]
    assert seen.settled == 1  # the wait may still change; "prepare" never will

    event_deliver(event="shipped", key="seen-1", payload={"n": 1})
    done = drain(waiting)
    assert (done.status, done.verdict["payload"]) == (Mission.Status.SUCCEEDED, {"n": 1})
    seen = engine._step_cache[str(waiting.id)]
    assert seen.settled == 2 == len(seen.steps)
