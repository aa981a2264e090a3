"""Reads about decisions, with the visibility rules views, the API and consumers share."""

from __future__ import annotations

import heapq
import itertools

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from decisions.models import Decision

# Undated decisions sort after dated ones on every database (SQLite puts NULLs first).
SORTS = {
    "due": (F("due_at").asc(nulls_last=True), "created_at", "id"),
    "age": ("created_at", "id"),
    "-age": ("-created_at", "-id"),
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
        # Role ids as literals: the planner then walks the role's index in the page's order.
        decisions = _base().filter(
            role_id__in=decision_role_ids(user=user), status=Decision.Status.PENDING
        )
    if status:
        decisions = decisions.filter(status=status)
    if role:
        decisions = decisions.filter(role__name=role)
    if overdue:
        decisions = decisions.filter(status=Decision.Status.PENDING, due_at__lt=timezone.now())
    if view == "archive" and sort == "due":
        return decisions.order_by("-decided_at", "-id")
    return decisions.order_by(*SORTS.get(sort, SORTS["due"]))


class RoleMerge:
    """A queue over several roles, sliceable for a Paginator. PostgreSQL cannot walk one
    index in order across `role_id IN (...)` (it sorts every pending row), so each role's
    index yields its first rows in order and only the page is merged and fetched."""

    def __init__(self, decisions: QuerySet[Decision], role_ids: list[int], sort: str):
        self.decisions = decisions
        self.role_ids = role_ids
        self.descending = sort == "-age"
        self.fields = ["due_at", "created_at", "id"] if sort == "due" else ["created_at", "id"]

    def count(self) -> int:
        return self.decisions.count()

    def _key(self, row: tuple) -> tuple:
        if len(self.fields) == 3:  # undated last, as NULLS LAST does
            due_at, created_at, pk = row
            return (due_at is None, due_at or created_at, created_at, pk)
        return row

    def __getitem__(self, page: slice) -> list[Decision]:
        heads = [
            self.decisions.filter(role_id=role_id).values_list(*self.fields)[: page.stop]
            for role_id in self.role_ids
        ]
        merged = heapq.merge(*heads, key=self._key, reverse=self.descending)
        ids = [row[-1] for row in itertools.islice(merged, page.start, page.stop)]
        rows = self.decisions.in_bulk(ids)
        return [rows[pk] for pk in ids if pk in rows]


def decision_queue_pages(
    *,
    user: AbstractBaseUser,
    view: str = "queue",
    status: str | None = None,
    role: str | None = None,
    overdue: bool = False,
    sort: str = "due",
) -> QuerySet[Decision] | RoleMerge:
    """decision_queue, ready for a Paginator: fast first pages however long the queue."""
    decisions = decision_queue(
        user=user, view=view, status=status, role=role, overdue=overdue, sort=sort
    )
    role_ids = decision_role_ids(user=user) if view == "queue" and not role else []
    if len(role_ids) > 1 and sort in SORTS:
        return RoleMerge(decisions, role_ids, sort)
    return decisions


def decisions_pending_for(*, user: AbstractBaseUser) -> QuerySet[Decision]:
    """Pending decisions of the user's roles, oldest due first (the API and MCP list)."""
    return decision_queue(user=user, view="queue")


def decisions_of_roles(*, user: AbstractBaseUser, status: str = "pending") -> QuerySet[Decision]:
    """Decisions for the user's roles in `status`: the pending queue (oldest due first), or
    that history (newest first)."""
    if status == Decision.Status.PENDING:
        return decisions_pending_for(user=user)
    if not user.is_authenticated:
        return Decision.objects.none()
    mine = decisions_visible_to(user).filter(role__in=user.groups.all(), status=status)
    return mine.order_by("-created_at", "-id")


def decision_counts(*, user: AbstractBaseUser) -> dict[str, int]:
    return {
        "claimed": decision_queue(user=user, view="claimed").count(),
        "queue": decision_queue(user=user, view="queue").count(),
    }


def decisions_settled_for_waiting_step() -> QuerySet[Decision]:
    """For a mission subquery (OuterRef "id" and "current_step"): its current step's decision,
    if no longer pending. The scheduler uses it to wake a mission whose wake-up was missed."""
    from django.db.models import OuterRef

    return Decision.objects.filter(
        mission=OuterRef("id"), step_name=OuterRef("current_step")
    ).exclude(status=Decision.Status.PENDING)


def decisions_settled_for_any_wait() -> QuerySet[Decision]:
    """For a mission subquery (OuterRef "id" and "current_step"): a decided branch of the
    `ctx.wait_any` it waits in (named "<step>:<index>"), for the scheduler's backstop."""
    from django.db.models import OuterRef, Value
    from django.db.models.functions import Concat

    return Decision.objects.filter(
        mission=OuterRef("id"),
        step_name__startswith=Concat(OuterRef("current_step"), Value(":")),
    ).exclude(status__in=(Decision.Status.PENDING, Decision.Status.WITHDRAWN))
