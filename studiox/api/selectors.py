"""Reads the API needs that the apps do not offer yet (the lead may move them into the apps)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from decisions.models import Decision
from decisions.selectors import decisions_pending_for, decisions_visible_to
from missions.models import Mission
from observations.models import Observation


def mission_observations(
    *, mission: Mission, after: int = 0, limit: int = 500
) -> list[Observation]:
    """The mission's rail after sequence number `after`, oldest first, at most `limit` lines."""
    return list(Observation.objects.filter(mission=mission, id__gt=after).order_by("id")[:limit])


def mission_recent_observations(*, mission: Mission, limit: int = 20) -> list[Observation]:
    """The mission's last `limit` rail lines, oldest first."""
    recent: QuerySet[Observation] = Observation.objects.filter(mission=mission).order_by("-id")
    return list(reversed(recent[:limit]))


def decisions_of_roles(*, user: AbstractBaseUser, status: str = "pending") -> QuerySet[Decision]:
    """Decisions for the user's roles in `status`: the pending queue (oldest due first), or
    that history (newest first)."""
    if status == Decision.Status.PENDING:
        return decisions_pending_for(user=user)
    if not user.is_authenticated:
        return Decision.objects.none()
    mine = decisions_visible_to(user).filter(role__in=user.groups.all(), status=status)
    return mine.order_by("-created_at", "-id")
