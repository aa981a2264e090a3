"""Drive missions in-process, exactly as a worker would, for tests of engine rules."""

from django.utils import timezone

from missions import engine
from missions.engine import Outcome, mission_advance
from missions.models import Mission, Step
from missions.services import mission_start


def started(user, type: str = "test_count", **input) -> Mission:
    """A mission just started (pending, not advanced); `test_count` counts one step unless
    `steps` says otherwise."""
    return mission_start(type=type, input=input or {"steps": 1}, started_by=user).mission


def drain(mission: Mission, *, limit: int = 10_000) -> Mission:
    """Advance until the mission stops making progress on its own (waits or finishes)."""
    for _ in range(limit):
        outcome = mission_advance(mission_id=mission.id, worker="test-worker")
        if outcome not in (Outcome.CONTINUE,):
            break
    mission.refresh_from_db()
    return mission


def make_due(mission: Mission) -> None:
    """Bring the mission's pending timer, time-out or back-off forward to now, as if the
    time had passed (tests do not sleep through back-offs)."""
    now = timezone.now()
    for step in Step.objects.filter(mission=mission).exclude(status=Step.Status.COMPLETED):
        step.wait = {
            **step.wait,
            **{k: now.isoformat() for k in ("until", "retry_at") if step.wait.get(k)},
        }
        step.save(update_fields=["wait"])
    Mission.objects.filter(id=mission.id).update(wake_at=now)
    engine._step_cache.clear()  # the rows changed behind the worker's back
