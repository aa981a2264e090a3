"""Reads about decisions, with the visibility rules views, the API and consumers share."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from decisions.models import Decision

# Undated decisions sort after dated ones on every database (SQLite puts NULLs first).
SORTS = {
    "due": (F("due_at").asc(nulls_last=True), "created_at"),
    "age": ("created_at",),
    "-age": ("-created_at",),
}


def _base() -> QuerySet[Decision]:
    return Decision.objects.select_related("mission", "role", "decided_by", "claimed_by")


def decisions_visible_to(user: AbstractBaseUser) -> QuerySet[Decision]:
    """Decisions of the user's roles, of missions they started, or all with the view permission."""
    if not user.is_authenticated:
        return Decision.objects.none()
    if user.is_superuser or user.has_perm("decisions.view_decision"):
        return _base()
    return _base().filter(
        Q(role__in=user.groups.all()) | Q(mission__started_by=user) | Q(decided_by=user)
    )


def decision_role_ids(*, user: AbstractBaseUser) -> list[int]:
    """The roles (Django group ids) whose queue the user works on; the live consumer joins
    one channel group per role."""
    if not user.is_authenticated:
        return []
    return list(user.groups.order_by("id").values_list("id", flat=True))


def decision_get_for(*, user: AbstractBaseUser, decision_id) -> Decision | None:
    """The decision if the user may see it (role member, the mission's requester, whoever
    decided it, or `decisions.view_decision`), else None: a 404 either way."""
    try:
        return decisions_visible_to(user).filter(id=int(decision_id)).first()
    except (TypeError, ValueError):
        return None


def decision_queue(
    *,
    user: AbstractBaseUser,
    view: str = "queue",
    status: str | None = None,
    role: str | None = None,
    overdue: bool = False,
    sort: str = "due",
) -> QuerySet[Decision]:
    """One of the three queue views: "claimed" (claimed by me, pending), "queue" (pending for
    my roles) or "archive" (decided by me), filtered and sorted."""
    if not user.is_authenticated:
        return Decision.objects.none()
    if view == "claimed":
        decisions = _base().filter(claimed_by=user, status=Decision.Status.PENDING)
    elif view == "archive":
        decisions = _base().filter(decided_by=user)
    else:
        decisions = _base().filter(role__in=user.groups.all(), status=Decision.Status.PENDING)
    if status:
        decisions = decisions.filter(status=status)
    if role:
        decisions = decisions.filter(role__name=role)
    if overdue:
        decisions = decisions.filter(status=Decision.Status.PENDING, due_at__lt=timezone.now())
    if view == "archive" and sort == "due":
        return decisions.order_by("-decided_at", "-id")
    return decisions.order_by(*SORTS.get(sort, SORTS["due"]), "id")


def decisions_pending_for(*, user: AbstractBaseUser) -> QuerySet[Decision]:
    """Pending decisions of the user's roles, oldest due first (the API and MCP list)."""
    return decision_queue(user=user, view="queue")


def decision_counts(*, user: AbstractBaseUser) -> dict[str, int]:
    return {
        "claimed": decision_queue(user=user, view="claimed").count(),
        "queue": decision_queue(user=user, view="queue").count(),
    }
