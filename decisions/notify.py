"""Telling people a decision needs them: e-mail to those who may decide and the role's
webhooks (decisions.webhooks), all sent after the decision's transaction commits."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db import transaction

from decisions.models import Decision
from decisions.webhooks import EVENT_HEADLINES, EVENT_OPENED, webhooks_notify

logger = logging.getLogger(__name__)
OVERDUE_EVENTS = ("decision.reminded", "decision.escalated")


def notify_on_commit(*, decision: Decision, event: str, role_id: int | None = None) -> None:
    """Notify the role (`role_id`, else the decision's) of `event` ("decision.opened",
    "decision.reminded", "decision.escalated"...): a delivery per enabled webhook of the role,
    written in the caller's transaction, and for an opened decision e-mail to its approvers.
    Nothing leaves before the transaction commits; a rolled-back change notifies nobody.
    Every notification about a decision goes through here, so webhooks hear all of them."""
    webhooks_notify(decision=decision, event=event, role_id=role_id)
    if event == EVENT_OPENED:
        transaction.on_commit(lambda: notify_approvers(decision_id=decision.id))
    elif event in OVERDUE_EVENTS:  # reminded (the role) or escalated (`role_id`)
        headline = EVENT_HEADLINES[event]
        transaction.on_commit(
            lambda: notify_approvers(decision_id=decision.id, role_id=role_id, headline=headline)
        )


def notify_approvers(
    *, decision_id: int, role_id: int | None = None, headline: str = "Decision needed"
) -> int:
    """E-mail every member of the decision's role (or of `role_id`) who may decide it:
    active, with an address, not the mission's requester, and not the decider of an earlier
    tier (four eyes)."""
    decision = Decision.objects.select_related("role", "mission").filter(id=decision_id).first()
    if decision is None or not decision.is_pending:
        return 0
    approvers = (
        get_user_model()
        .objects.filter(groups=role_id or decision.role_id, is_active=True)
        .exclude(email="")
        .exclude(id=decision.mission.started_by_id)
        .exclude(decisions_decided__mission_id=decision.mission_id)
        .distinct()
    )
    due = f"\nDue: {decision.due_at:%Y-%m-%d %H:%M} UTC" if decision.due_at else ""
    link = f"{getattr(settings, 'STUDIOX_BASE_URL', '')}/decisions/{decision.id}/"
    body = f"{decision.title}\n\n{decision.summary}{due}\n\nOpen it: {link}\n"
    subject = f"[StudioX] {headline}: {decision.title}"[:200]
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email]) for user in approvers]
    try:
        return send_mass_mail(messages, fail_silently=False)
    except Exception:  # the decision stands; a lost e-mail must not fail the mission's step
        logger.warning("could not e-mail approvers of decision %s", decision_id, exc_info=True)
        return 0
