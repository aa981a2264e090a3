"""What every change of a decision leaves behind: a row in its audit trail, and a live hint to
the role's open queue and decision pages once the change commits (decisions/live.py)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from decisions.live import decision_hint_on_commit
from decisions.models import Decision, DecisionAudit


def decision_hint(decision: Decision, change: str) -> None:
    # Once escalated, the escalation role works on the decision too: its pages hear of it.
    escalated_to = decision.escalation_role_id if decision.escalated_at else None
    for role_id in dict.fromkeys(filter(None, (decision.role_id, escalated_to))):
        decision_hint_on_commit(
            decision_id=decision.id,
            role_id=role_id,
            change=change,
            state=decision.live_state,
        )


def decision_audit(
    decision: Decision,
    action: str,
    user: AbstractBaseUser | None = None,
    reason: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    DecisionAudit.objects.create(
        decision=decision,
        action=action,
        user=user if user and user.pk else None,
        username=user.get_username() if user else "",
        reason=reason,
        before=before or {},
        after=after or {},
    )
