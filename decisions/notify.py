"""E-mail to the people who may decide, sent after the decision's transaction commits."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail

from decisions.models import Decision

logger = logging.getLogger(__name__)


def notify_approvers(*, decision_id: int) -> int:
    """E-mail every member of the decision's role who may decide it: active, with an address,
    not the mission's requester, and not the decider of an earlier tier (four eyes)."""
    decision = Decision.objects.select_related("role", "mission").filter(id=decision_id).first()
    if decision is None or not decision.is_pending:
        return 0
    approvers = (
        get_user_model()
        .objects.filter(groups=decision.role, is_active=True)
        .exclude(email="")
        .exclude(id=decision.mission.started_by_id)
        .exclude(decisions_decided__mission_id=decision.mission_id)
        .distinct()
    )
    due = f"\nDue: {decision.due_at:%Y-%m-%d %H:%M} UTC" if decision.due_at else ""
    link = f"{getattr(settings, 'STUDIOX_BASE_URL', '')}/decisions/{decision.id}/"
    body = f"{decision.title}\n\n{decision.summary}{due}\n\nOpen it: {link}\n"
    subject = f"[StudioX] Decision needed: {decision.title}"[:200]
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email]) for user in approvers]
    try:
        return send_mass_mail(messages, fail_silently=False)
    except Exception:  # the decision stands; a lost e-mail must not fail the mission's step
        logger.warning("could not e-mail approvers of decision %s", decision_id, exc_info=True)
        return 0
