"""Reads the API needs that the apps do not offer yet (the lead may move them into the apps)."""

from __future__ import annotations

from django.db.models import QuerySet

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
