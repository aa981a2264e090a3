"""What decisions use of missions, and nothing else: take a mission's row lock, and wake a
mission that waits. What the engine uses of decisions is in `decisions.waits`.

Lock order (written out in `decisions.waits`): the mission's row first, then its decisions.
The engine's checkpoint takes the row with its fence UPDATE; deciding takes it with
`mission_lock` before it touches the decision, so a worker re-entering its wait either sees
the decision or has committed its wait before `mission_wake` looks.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from missions.engine import enqueue_advance
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
        transaction.on_commit(lambda: enqueue_advance(mission_id))
    return bool(woken)
