"""Reads about missions, with the permission rules every view, API and consumer shares."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from missions.models import Mission, Step
from missions.runtime import MissionDefinition, registered_definitions


def mission_sees_all(user: AbstractBaseUser) -> bool:
    """Superusers and holders of `missions.view_mission` see every mission."""
    return user.is_superuser or user.has_perm("missions.view_mission")


def missions_visible_to(user: AbstractBaseUser) -> QuerySet[Mission]:
    """Missions a user may see: those they started, those with a decision for one of their
    roles, or all of them with the `missions.view_mission` permission."""
    if not user.is_authenticated:
        return Mission.objects.none()
    missions = Mission.objects.select_related("started_by")
    if mission_sees_all(user):
        return missions
    roles = list(user.groups.values_list("name", flat=True))
    return missions.filter(Q(started_by=user) | Q(decisions__role__name__in=roles)).distinct()


def mission_list(
    *,
    user: AbstractBaseUser,
    status: str | None = None,
    type: str | None = None,
    search: str | None = None,
) -> QuerySet[Mission]:
    """Visible missions, newest first, filtered by status, type and a search term."""
    missions = missions_visible_to(user)
    if status:
        missions = missions.filter(status=status)
    if type:
        missions = missions.filter(type=type)
    if search:
        term = search.strip()
        query = (
            Q(type__icontains=term)
            | Q(title__icontains=term)
            | Q(started_by__username__icontains=term)
        )
        if len(term) >= 8:
            query |= Q(id__startswith=term) if _looks_like_uuid_prefix(term) else Q()
        missions = missions.filter(query)
    return missions.order_by("-created_at", "-id")


def _looks_like_uuid_prefix(term: str) -> bool:
    return all(c in "0123456789abcdef-" for c in term.lower())


def mission_get_for(*, user: AbstractBaseUser, mission_id) -> Mission | None:
    """The mission if it exists and the user may see it, else None (a 404 either way)."""
    try:
        return missions_visible_to(user).filter(id=mission_id).first()
    except (ValueError, TypeError, ValidationError):  # not a UUID
        return None


def mission_can_operate(*, user: AbstractBaseUser, mission: Mission) -> bool:
    """Cancel, pause, resume, retry: operators (`missions.change_mission`); the requester
    may cancel their own mission."""
    return user.is_authenticated and (user.is_superuser or user.has_perm("missions.change_mission"))


def mission_can_cancel(*, user: AbstractBaseUser, mission: Mission) -> bool:
    return mission_can_operate(user=user, mission=mission) or (
        user.is_authenticated and mission.started_by_id == user.id
    )


def mission_steps(*, mission: Mission) -> QuerySet[Step]:
    return Step.objects.filter(mission=mission).order_by("position")


def mission_types() -> list[MissionDefinition]:
    return registered_definitions()


def missions_active() -> QuerySet[Mission]:
    """Every mission that has not finished, for the rail."""
    return Mission.objects.exclude(status__in=Mission.FINAL_STATUSES).select_related("started_by")


def missions_in_flight() -> QuerySet[Mission]:
    return Mission.objects.exclude(status__in=Mission.FINAL_STATUSES).order_by("created_at")


def missions_stuck(*, limit: int = 500) -> list[tuple[Mission, str]]:
    """Missions that are not moving, with the reason an operator needs to act on."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    now = timezone.now()
    late = now - timedelta(seconds=max(60, settings.STUDIOX_LEASE_SECONDS * 6))
    reasons = [
        (
            Q(status__in=Mission.RUNNABLE_STATUSES, lease_expires_at__lt=late),
            "its worker died and no worker has taken it over: "
            "are workers and the scheduler running?",
        ),
        (
            Q(
                status__in=Mission.RUNNABLE_STATUSES,
                lease_expires_at__isnull=True,
                enqueued_at__lt=late,
            ),
            "runnable but not picked up: are workers consuming the queue?",
        ),
        (
            Q(status=Mission.Status.WAITING, wake_at__lt=late),
            "its timer or time-out is overdue: is the scheduler (celery beat) running?",
        ),
        (Q(status=Mission.Status.PAUSED), "paused by an operator"),
        (Q(status=Mission.Status.FAILED), "failed: fix the cause, then retry it"),
    ]
    stuck: list[tuple[Mission, str]] = []
    for condition, reason in reasons:
        for mission in Mission.objects.filter(condition).order_by("updated_at")[:limit]:
            detail = f" ({mission.error})" if mission.error else ""
            stuck.append((mission, reason + detail))
    return stuck
