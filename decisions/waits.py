"""What the mission engine uses of decisions, and nothing else: open the decision a waiting
step asks for, read its outcome, expire it when its time is up, withdraw a cancelled mission's
pending decisions, and the subquery the scheduler uses to find a wake-up that was missed.
It imports nothing from missions; what decisions use of missions is in `missions.waits`.

Lock order, which keeps a decision from slipping past a mission that is entering its wait:
the mission's row first, then its decisions; nobody holds a decision row while waiting for the
mission's.
- The engine calls decision_open, decision_outcome and decision_expire inside its checkpoint
  transaction, after the fence UPDATE has locked the mission's row. (A decision that is no
  longer pending never changes, so the engine may read a settled outcome without that lock.)
- mission_cancel locks the row with its conditional UPDATE, then calls decisions_withdraw.
- decision_decide (decisions.services) takes the row with `missions.waits.mission_lock` before
  its conditional UPDATE of the decision, then wakes the mission with `mission_wake`.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from decisions.models import Decision, DecisionAudit
from decisions.notify import notify_approvers
from decisions.selectors import (
    decisions_settled_for_any_wait,
    decisions_settled_for_waiting_step,
)
from decisions.trail import decision_audit, decision_hint

__all__ = [
    "decision_expire",
    "decision_open",
    "decision_outcome",
    "decision_withdraw",
    "decisions_settled_for_any_wait",
    "decisions_settled_for_waiting_step",
    "decisions_withdraw",
]

Status = Decision.Status


def _result(decision: Decision) -> dict:
    return {
        "outcome": decision.outcome or decision.status,
        "comment": decision.comment,
        "decided_by": decision.decided_by_name or None,
        "decided_at": decision.decided_at.isoformat() if decision.decided_at else None,
    }


def decision_open(
    *,
    mission,
    step_name: str,
    role: str,
    title: str,
    summary: str,
    context: dict,
    options: list[str],
    due_at: datetime | None,
) -> Decision:
    """Put a decision in the queue of `role` (a Django group, created if missing); once per
    mission step. After commit, eligible approvers are e-mailed and the role's open queue
    pages are told to refresh."""
    group, _ = Group.objects.get_or_create(name=role)
    decision, created = Decision.objects.get_or_create(
        mission=mission,
        step_name=step_name,
        defaults={
            "title": title[:300],
            "summary": summary,
            "context": context,
            "role": group,
            "options": list(options) or ["approved", "rejected"],
            "due_at": due_at,
        },
    )
    if created:
        decision_audit(
            decision, DecisionAudit.Action.OPENED, after={"role": role, "due_at": str(due_at)}
        )
        transaction.on_commit(lambda: notify_approvers(decision_id=decision.id))
        decision_hint(decision, "opened")
    return decision


def decision_outcome(*, mission_id, step_name: str) -> dict | None:
    """None while pending; else what was decided, as the engine records it."""
    decision = Decision.objects.filter(mission_id=mission_id, step_name=step_name).first()
    if decision is None or decision.is_pending:
        return None
    return _result(decision)


def decision_expire(*, mission_id, step_name: str) -> dict:
    """Expire a pending decision whose time is up; if someone decided first, that stands."""
    now = timezone.now()
    pending = Decision.objects.filter(
        mission_id=mission_id, step_name=step_name, status=Status.PENDING
    )
    if pending.update(status=Status.EXPIRED, outcome="expired", decided_at=now):
        decision = Decision.objects.get(mission_id=mission_id, step_name=step_name)
        decision_audit(decision, DecisionAudit.Action.EXPIRED, reason="the time-out passed")
        decision_hint(decision, "expired")
    decision = Decision.objects.get(mission_id=mission_id, step_name=step_name)
    return _result(decision)


def decisions_withdraw(*, mission_id, by: AbstractBaseUser | None) -> int:
    """Withdraw a mission's pending decisions (the mission was cancelled)."""
    withdrawn = 0
    for decision in Decision.objects.filter(mission_id=mission_id, status=Status.PENDING):
        if Decision.objects.filter(id=decision.id, status=Status.PENDING).update(
            status=Status.WITHDRAWN, outcome="withdrawn", decided_at=timezone.now()
        ):
            withdrawn += 1
            decision.refresh_from_db()  # the hint carries the new state
            decision_audit(
                decision, DecisionAudit.Action.WITHDRAWN, user=by, reason="mission cancelled"
            )
            decision_hint(decision, "withdrawn")
    return withdrawn


def decision_withdraw(*, mission_id, step_name: str, reason: str) -> bool:
    """Withdraw one pending decision, keeping `reason` as its comment (another branch of a
    `ctx.wait_any` settled first); False if it was no longer pending. Called inside the
    engine's checkpoint, after its fence locked the mission's row."""
    pending = Decision.objects.filter(
        mission_id=mission_id, step_name=step_name, status=Status.PENDING
    )
    if not pending.update(
        status=Status.WITHDRAWN,
        outcome="withdrawn",
        comment=reason[:5000],
        decided_at=timezone.now(),
        claimed_by=None,
        claimed_at=None,
    ):
        return False
    decision = Decision.objects.get(mission_id=mission_id, step_name=step_name)
    decision_audit(decision, DecisionAudit.Action.WITHDRAWN, reason=reason)
    decision_hint(decision, "withdrawn")
    return True
