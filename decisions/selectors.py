"""Reads about decisions, with the visibility rules views, the API and consumers share."""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import (
    Case,
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from decisions.models import Decision, Delegation
from missions.search import SEARCH_MAX_LENGTH, declared_amount_fields, mission_search_q
from studiox.compiled_query import CompiledQuery

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
        _of_roles(decision_role_ids(user=user), escalated=True)
        | Q(mission__started_by=user)
        | Q(decided_by=user)
    )


def _of_roles(role_ids: list[int], *, escalated: bool) -> Q:
    """Decisions of these roles and, with `escalated`, those escalated to one of them."""
    of_roles = Q(role_id__in=role_ids)
    if escalated:
        of_roles |= Q(escalation_role_id__in=role_ids, escalated_at__isnull=False)
    return of_roles


def delegations_active(*, now: datetime | None = None) -> QuerySet[Delegation]:
    """Delegations in force at `now`: started, not ended, not revoked, between active users."""
    now = now or timezone.now()
    return Delegation.objects.filter(
        starts_at__lte=now,
        ends_at__gt=now,
        revoked_at__isnull=True,
        user__is_active=True,
        delegate__is_active=True,
    )


def delegators_of(*, user: AbstractBaseUser) -> QuerySet:
    """The colleagues `user` stands in for right now (each named them their delegate)."""
    if not user.is_authenticated:
        return get_user_model().objects.none()
    given = delegations_active().filter(delegate=user).values("user_id")
    return get_user_model().objects.filter(id__in=given).order_by("username")


def delegations_of(*, user: AbstractBaseUser) -> QuerySet[Delegation]:
    """The delegations `user` gave or received, not yet ended: the delegation page's list."""
    return (
        Delegation.objects.filter(Q(user=user) | Q(delegate=user), ends_at__gt=timezone.now())
        .select_related("user", "delegate")
        .order_by("starts_at", "id")
    )


def decision_search_q(term: str) -> Q:
    """Decisions matching `term`: their title, their number, or their mission by its title,
    requester, id prefix and declared business keys (order, customer, amount...)."""
    term = term.strip()[:SEARCH_MAX_LENGTH]
    if not term:
        return Q()
    query = Q(title__icontains=term) | mission_search_q(term, prefix="mission__")
    if term.isascii() and term.isdigit() and len(term) <= 18:
        query |= Q(id=int(term))
    return query


def decision_role_ids(*, user: AbstractBaseUser) -> list[int]:
    """The roles (Django group ids) whose queue the user works on; the live consumer joins
    one channel group per role."""
    if not user.is_authenticated:
        return []
    # A delegate works on the queues of the colleagues they stand in for (docs: Delegation).
    standing_in = Q(user__in=delegators_of(user=user)) | Q(user=user)
    roles = Group.objects.filter(standing_in).distinct().order_by("id")
    return list(roles.values_list("id", flat=True))


def _escalated_to_any(role_ids: list[int]) -> bool:
    """Whether a pending decision of another role was escalated to one of these roles: only
    then does the queue look beyond its roles' own index (the common case stays fast)."""
    return (
        Decision.objects.filter(
            status=Decision.Status.PENDING,
            escalation_role_id__in=role_ids,
            escalated_at__isnull=False,
        )
        .exclude(role_id__in=role_ids)
        .exists()
    )


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
    search: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
    requester: str | None = None,
) -> QuerySet[Decision]:
    """One of the three queue views: "claimed" (claimed by me, pending), "queue" (pending for
    my roles, and those escalated to them) or "archive" (decided by me), filtered (`search`:
    decision_search_q; `amount_min`/`amount_max`: decision_amount; `requester`: the
    username of who started the mission) and sorted."""
    if not user.is_authenticated:
        return Decision.objects.none()
    if view == "claimed":
        decisions = _base().filter(claimed_by=user, status=Decision.Status.PENDING)
    elif view == "archive":
        decisions = _base().filter(decided_by=user)
    else:
        # Role ids as literals: the planner then walks the role's index in the page's order.
        role_ids = decision_role_ids(user=user)
        decisions = _base().filter(
            _of_roles(role_ids, escalated=_escalated_to_any(role_ids)),
            status=Decision.Status.PENDING,
        )
    if status:
        decisions = decisions.filter(status=status)
    if role:
        decisions = decisions.filter(role__name=role)
    if overdue:
        decisions = decisions.filter(status=Decision.Status.PENDING, due_at__lt=timezone.now())
    if search and search.strip():
        decisions = decisions.filter(decision_search_q(search))
    if amount_min is not None or amount_max is not None:
        decisions = _with_amount(decisions, amount_min=amount_min, amount_max=amount_max)
    if requester:
        decisions = decisions.filter(mission__started_by__username__iexact=requester)
    if view == "archive" and sort == "due":
        return decisions.order_by("-decided_at", "-id")
    return decisions.order_by(*SORTS.get(sort, SORTS["due"]))


# A decision's amount, for the queue's amount filter: the "amount" its mission attached to it
# (context, a number or plain numeric text), else its mission's declared amount (the input
# field `@mission(amount=...)` names). Text that is not a plain number has no amount, and is
# never cast: a cast of "n/a" would fail the whole query on PostgreSQL.
AMOUNT_TEXT_PATTERN = r"^-?[0-9]{1,15}([.][0-9]+)?$"
AMOUNT_FIELD = DecimalField(max_digits=24, decimal_places=6)


def _declared_amount_text() -> Case | Value:
    declared = [
        When(mission__type=mission_type, then=KeyTextTransform(field, "mission__input"))
        for mission_type, field in declared_amount_fields().items()
    ]
    if not declared:
        return Value(None, output_field=TextField())
    return Case(*declared, default=Value(None), output_field=TextField())


def _with_amount(
    decisions: QuerySet[Decision], *, amount_min: Decimal | None, amount_max: Decimal | None
) -> QuerySet[Decision]:
    decisions = decisions.annotate(
        amount_text=Coalesce(
            KeyTextTransform("amount", "context"), _declared_amount_text(), output_field=TextField()
        )
    ).annotate(
        amount=Case(
            When(amount_text__regex=AMOUNT_TEXT_PATTERN, then=Cast("amount_text", AMOUNT_FIELD)),
            default=Value(None),
            output_field=AMOUNT_FIELD,
        )
    )
    if amount_min is not None:
        decisions = decisions.filter(amount__gte=amount_min)
    if amount_max is not None:
        decisions = decisions.filter(amount__lte=amount_max)
    return decisions


class RoleMerge:
    """A queue over several roles, sliceable for a Paginator. PostgreSQL cannot walk one
    index in order across `role_id IN (...)` (it sorts every pending row), so each role's
    index yields its first rows in order and only the page is merged and fetched."""

    def __init__(self, decisions: QuerySet[Decision], role_ids: list[int], sort: str):
        self.decisions = decisions
        self.role_ids = role_ids
        self.others = _escalated_to_any(role_ids)  # escalated here from another role
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
        lanes = [self.decisions.filter(role_id=role_id) for role_id in self.role_ids]
        if self.others:
            lanes.append(self.decisions.exclude(role_id__in=self.role_ids))
        heads = [lane.values_list(*self.fields)[: page.stop] for lane in lanes]
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
    search: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
    requester: str | None = None,
) -> QuerySet[Decision] | RoleMerge:
    """decision_queue, ready for a Paginator: fast first pages however long the queue."""
    decisions = decision_queue(
        user=user,
        view=view,
        status=status,
        role=role,
        overdue=overdue,
        sort=sort,
        search=search,
        amount_min=amount_min,
        amount_max=amount_max,
        requester=requester,
    )
    role_ids = decision_role_ids(user=user) if view == "queue" and not role else []
    if len(role_ids) > 1 and sort in SORTS:
        return RoleMerge(decisions, role_ids, sort)
    return decisions


def decisions_pending_for(*, user: AbstractBaseUser) -> QuerySet[Decision]:
    """Pending decisions of the user's roles, oldest due first (the API and MCP list)."""
    return decision_queue(user=user, view="queue")


def decisions_of_roles(
    *, user: AbstractBaseUser, status: str = "pending", search: str | None = None
) -> QuerySet[Decision]:
    """Decisions for the user's roles in `status`: the pending queue (oldest due first), or
    that history (newest first); with `search`, those matching it (decision_search_q)."""
    if status == Decision.Status.PENDING:
        return decision_queue(user=user, view="queue", search=search)
    if not user.is_authenticated:
        return Decision.objects.none()
    mine = decisions_visible_to(user).filter(role__in=user.groups.all(), status=status)
    if search and search.strip():
        mine = mine.filter(decision_search_q(search))
    return mine.order_by("-created_at", "-id")


def decision_counts(*, user: AbstractBaseUser) -> dict[str, int]:
    return {
        "claimed": decision_queue(user=user, view="claimed").count(),
        "queue": decision_queue(user=user, view="queue").count(),
    }


def decisions_pending_count(*, user: AbstractBaseUser) -> int:
    """How many decisions wait in the user's queue: the top bar's badge, the same number as
    the queue's "My queue" tab."""
    return decision_queue(user=user, view="queue").count()


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


# The scheduler's reads (decisions.waits.decisions_remind_and_escalate), composed once
# (studiox.compiled_query): they run every second.
REMINDER_BATCH = 500
_REMINDERS_DUE = CompiledQuery(
    lambda now: (
        Decision.objects.filter(
            status=Decision.Status.PENDING,
            remind_after__isnull=False,
            reminded_at__isnull=True,
            due_at__lte=now,
        )
        .order_by("due_at", "id")
        .values_list("id", flat=True)[:REMINDER_BATCH]
    )
)
# As long again after the reminder as the role had before it.
_ESCALATIONS_DUE = CompiledQuery(
    lambda now: (
        Decision.objects.filter(
            status=Decision.Status.PENDING,
            reminded_at__isnull=False,
            escalated_at__isnull=True,
            escalation_role__isnull=False,
        )
        .annotate(
            escalates_at=ExpressionWrapper(
                F("reminded_at") + F("remind_after"), output_field=DateTimeField()
            )
        )
        .filter(escalates_at__lte=now)
        .order_by("reminded_at", "id")
        .values_list("id", flat=True)[:REMINDER_BATCH]
    )
)


def decisions_reminders_due(*, now: datetime) -> list[int]:
    """Pending decisions past their due time whose role has not been reminded, oldest first."""
    return _REMINDERS_DUE.values(now=now)


def decisions_escalations_due(*, now: datetime) -> list[int]:
    """Reminded decisions still pending as long again after the reminder, oldest first."""
    return _ESCALATIONS_DUE.values(now=now)
