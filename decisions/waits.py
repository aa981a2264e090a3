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

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from decisions.models import Decision, DecisionAudit
from decisions.notify import notify_on_commit
from decisions.selectors import (
    decisions_escalations_due,
    decisions_reminders_due,
    decisions_settled_for_any_wait,
    decisions_settled_for_waiting_step,
)
from decisions.trail import decision_audit, decision_hint
from decisions.webhooks import EVENT_OPENED

__all__ = [
    "decision_escalate",
    "decision_expire",
    "decision_open",
    "decision_outcome",
    "decision_remind",
    "decision_withdraw",
    "decisions_remind_and_escalate",
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
    remind_after: timedelta | None = None,
    escalate_to: str | None = None,
) -> Decision:
    """Put a decision in the queue of `role` (a Django group, created if missing); once per
    mission step. After commit, eligible approvers are e-mailed, the role's webhooks are
    called and its open queue pages are told to refresh.

    `due_at` is when the mission gives up (its time-out). With `remind_after`, the decision is
    due that long after it opens instead: the scheduler then reminds the role, and escalates
    to the role `escalate_to` (created if missing) once as long again has passed
    (decisions_remind_and_escalate)."""
    group, _ = Group.objects.get_or_create(name=role)
    escalation_role = Group.objects.get_or_create(name=escalate_to)[0] if escalate_to else None
    if remind_after is not None:
        due_at = timezone.now() + remind_after
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
            "escalation_role": escalation_role,
            "remind_after": remind_after,
        },
    )
    if created:
        reminder = {"remind_after": str(remind_after), "escalate_to": escalate_to}
        decision_audit(
            decision,
            DecisionAudit.Action.OPENED,
            after={"role": role, "due_at": str(due_at), **(reminder if remind_after else {})},
        )
        notify_on_commit(decision=decision, event=EVENT_OPENED)
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


# Reminders and escalation (docs/decision-queue.md): the scheduler's tick calls
# decisions_remind_and_escalate. Each step is one conditional UPDATE on a column that is
# still empty, so of two schedulers (or a tick that overlaps the next) exactly one reminds,
# and exactly one escalates; the other updates nothing and tells nobody.

EVENT_REMINDED = "decision.reminded"
EVENT_ESCALATED = "decision.escalated"


def decisions_remind_and_escalate(*, now: datetime | None = None) -> dict[str, int]:
    """Remind the role of each pending decision past its due time (those opened with
    `remind_after`), then escalate those still pending as long again after the reminder."""
    now = now or timezone.now()
    return {"reminded": _remind_due(now), "escalated": _escalate_due(now)}


def _remind_due(now: datetime) -> int:
    due = decisions_reminders_due(now=now)
    return sum(decision_remind(decision_id=decision_id, now=now) for decision_id in due)


def _escalate_due(now: datetime) -> int:
    due = decisions_escalations_due(now=now)
    return sum(decision_escalate(decision_id=decision_id, now=now) for decision_id in due)


@transaction.atomic
def decision_remind(*, decision_id: int, now: datetime) -> bool:
    """Remind the decision's role that it is overdue, once; False if it was not (any more)
    pending, or already reminded."""
    pending = Decision.objects.filter(
        id=decision_id, status=Status.PENDING, reminded_at__isnull=True
    )
    if not pending.update(reminded_at=now):
        return False
    decision = Decision.objects.select_related("role", "mission").get(id=decision_id)
    reason = f"Due at {decision.due_at:%Y-%m-%d %H:%M} UTC and still pending."
    decision_audit(
        decision, DecisionAudit.Action.REMINDED, reason=reason, after={"role": decision.role.name}
    )
    notify_on_commit(decision=decision, event=EVENT_REMINDED)
    decision_hint(decision, "reminded")
    return True


@transaction.atomic
def decision_escalate(*, decision_id: int, now: datetime) -> bool:
    """Escalate an overdue decision to its escalation role, once: its members may then see
    and decide it too. False if it was not (any more) pending, or already escalated."""
    pending = Decision.objects.filter(
        id=decision_id,
        status=Status.PENDING,
        escalated_at__isnull=True,
        escalation_role__isnull=False,
    )
    if not pending.update(escalated_at=now):
        return False
    decision = Decision.objects.select_related("role", "escalation_role", "mission").get(
        id=decision_id
    )
    to = decision.escalation_role.name
    decision_audit(
        decision,
        DecisionAudit.Action.ESCALATED,
        reason=f"Still pending after the reminder to {decision.role.name}: escalated to {to}.",
        after={"escalation_role": to},
    )
    notify_on_commit(decision=decision, event=EVENT_ESCALATED, role_id=decision.escalation_role_id)
    decision_hint(decision, "escalated")
    return True
