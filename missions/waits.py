"""What decisions use of missions, and nothing else: take a mission's row lock, and wake a
mission that waits. What the engine uses of decisions is in `decisions.waits`.

Lock order (written out in `decisions.waits`): the mission's row first, then its decisions.
The engine's checkpoint takes the row with its fence UPDATE; deciding takes it with
`mission_lock` before it touches the decision, so a worker re-entering its wait either sees
the decision or has committed its wait before `mission_wake` looks.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from missions.handover import advance_woken
from missions.models import Mission

Status = Mission.Status


def mission_lock(*, mission_id) -> None:
    """Hold the mission's row lock until the caller's transaction ends (no-op on SQLite, where
    the first write takes the whole database)."""
    Mission.objects.select_for_update().filter(id=mission_id).values_list("id").first()


def mission_wake(*, mission_id) -> bool:
    """Make a waiting mission runnable now (a decision or event arrived); True if it was."""
    woken = Mission.objects.filter(id=mission_id, status=Status.WAITING).update(
        status=Status.RUNNING, wake_at=None, enqueued_at=timezone.now(), updated_at=timezone.now()
    )
    if woken:
        transaction.on_commit(lambda: advance_woken(mission_id))
    return bool(woken)


# A delayed wake may arrive this early (the sender's and the worker's clocks).
DUE_TOLERANCE = timedelta(milliseconds=50)


def mission_wake_if_due(*, mission_id) -> bool:
    """Wake a waiting mission whose due time has come (a rate limit's next slot): what the
    delayed message of a short wait does; True if it was woken. A message that arrives a
    little early still wakes it, as the step asks its limiter again anyway."""
    due = Mission.objects.filter(
        id=mission_id, status=Status.WAITING, wake_at__lte=timezone.now() + DUE_TOLERANCE
    )
    return due.exists() and mission_wake(mission_id=mission_id)


# A parent suspended in `ctx.wait_for_missions` or `ctx.wait_any` (docs/authoring.md).
_WAITS_FOR_MISSIONS = (Mission.WaitingOn.MISSIONS, Mission.WaitingOn.ANY)


def mission_wake_parent(*, mission: Mission) -> bool:
    """A mission reached a final state: wake its parent if the parent waits on missions.
    Called in the transaction that wrote the final state, so the lock order is the child's
    row, then the parent's; a parent committing its wait meanwhile is woken once it has."""
    if mission.parent_id is None:
        return False
    woken = Mission.objects.filter(
        id=mission.parent_id, status=Status.WAITING, waiting_on__in=_WAITS_FOR_MISSIONS
    ).update(
        status=Status.RUNNING, wake_at=None, enqueued_at=timezone.now(), updated_at=timezone.now()
    )
    if woken:
        parent_id = mission.parent_id
        transaction.on_commit(lambda: advance_woken(parent_id))
    return bool(woken)
