"""Reads about missions, with the permission rules every view, API and consumer shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber

from missions.models import MapItem, Mission, Step
from missions.runtime import MissionDefinition, registered_definitions
from missions.search import mission_search_q


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
    parent=None,
) -> QuerySet[Mission]:
    """Visible missions, newest first, filtered by status, type, parent mission (its
    children) and a search term (missions.search: title, type, requester, id prefix and the
    business keys the type declares); each with its children at hand (no query per row)."""
    missions = missions_visible_to(user).prefetch_related(_CHILDREN)
    if parent:
        missions = missions.filter(parent_id=parent)
    if status:
        missions = missions.filter(status=status)
    if type:
        missions = missions.filter(type=type)
    if search and search.strip():
        missions = missions.filter(mission_search_q(search))
    return missions.order_by("-created_at", "-id")


# A mission's children in the order they were started, with what a listing shows of them.
_CHILDREN = Prefetch(
    "children",
    queryset=Mission.objects.only(
        "id", "type", "status", "outcome", "summary", "verdict", "parent_id", "created_at"
    ).order_by("created_at", "id"),
)


def mission_children(*, mission: Mission) -> list[Mission]:
    """The missions `mission` started (ctx.start_mission), in the order it started them."""
    if mission.step_count == 0:  # a child starts in a step and commits with its checkpoint
        return []
    if "children" in getattr(mission, "_prefetched_objects_cache", {}):
        return list(mission.children.all())
    return list(_CHILDREN.queryset.filter(parent_id=mission.id))


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


TREE_DEPTH = 3  # levels of child missions a mission page shows; deeper ones are a click away
# Per mission; the others are "and N more". 12: the quarterly reconciliation's systems all show.
TREE_CHILDREN_SHOWN = 12
TREE_LEVEL_LIMIT = 200  # missions read per level, however wide the fan-out
SUBTREE_DEPTH = 8  # how deep a parent's rail follows its descendants
SUBTREE_LIMIT = 1000  # missions a parent's rail follows at most
MAP_ITEMS_SHOWN = 100  # items listed per parallel step; the counts cover every item


@dataclass
class TreeNode:
    """A mission in a mission tree; `more` counts its children not shown (beyond the caps)."""

    mission: Mission
    children: list[TreeNode] = field(default_factory=list)
    more: int = 0


def _visible_rows(user: AbstractBaseUser) -> QuerySet[Mission]:
    if mission_sees_all(user):
        return Mission.objects.all()
    # An id subquery: the visibility rule's join and DISTINCT would skew per-parent numbering.
    return Mission.objects.filter(id__in=missions_visible_to(user).values("id"))


def mission_tree(
    *,
    user: AbstractBaseUser,
    mission: Mission,
    depth: int | None = None,
    per_parent: int | None = None,
) -> TreeNode:
    """`mission` with the missions it started, and theirs, `depth` levels down (TREE_DEPTH),
    at most `per_parent` children each (TREE_CHILDREN_SHOWN), as far as `user` may see them:
    two queries per level (how many children, the first of them)."""
    depth = TREE_DEPTH if depth is None else depth
    per_parent = per_parent or TREE_CHILDREN_SHOWN
    visible = _visible_rows(user)
    top = TreeNode(mission=mission)
    frontier = {mission.id: top}
    seen = {mission.id}
    for level in range(depth + 1):
        counts = dict(
            visible.filter(parent_id__in=list(frontier))
            .order_by()
            .values_list("parent_id")
            .annotate(n=Count("id"))
        )
        for parent_id, node in frontier.items():
            node.more = counts.get(parent_id, 0)
        if level == depth or not counts:
            break
        frontier = _tree_level(visible, frontier=frontier, seen=seen, per_parent=per_parent)
    return top


def _tree_level(visible: QuerySet[Mission], *, frontier: dict, seen: set, per_parent: int) -> dict:
    """Adds the next level's first children under their parents; returns that level."""
    numbered = visible.filter(parent_id__in=list(frontier)).annotate(
        rank=Window(RowNumber(), partition_by=[F("parent_id")], order_by=[F("created_at"), F("id")])
    )
    # The first child of each parent before the second of any: a cut level hides the tail.
    rows = (
        numbered.filter(rank__lte=per_parent)
        .defer("input", "verdict")
        .order_by("rank", "created_at", "id")[:TREE_LEVEL_LIMIT]
    )
    level = {}
    for child in rows:
        if child.id in seen:  # a parent link that loops back would never end
            continue
        seen.add(child.id)
        parent = frontier[child.parent_id]
        parent.children.append(level.setdefault(child.id, TreeNode(mission=child)))
        parent.more -= 1
    return level


def mission_subtree_labels(
    *, user: AbstractBaseUser, mission: Mission, depth: int = SUBTREE_DEPTH
) -> dict[str, str]:
    """The mission and its descendants that `user` may see, id -> title (or type): one
    query per level, at most SUBTREE_LIMIT missions."""
    visible = _visible_rows(user)
    labels = {str(mission.id): mission.title or mission.type}
    frontier = [mission.id]
    for _ in range(depth):
        room = SUBTREE_LIMIT - len(labels)
        if not frontier or room <= 0:
            break
        rows = (
            visible.filter(parent_id__in=frontier)
            .order_by("created_at", "id")
            .values_list("id", "title", "type")[:room]
        )
        frontier = [mission_id for mission_id, _, _ in rows if str(mission_id) not in labels]
        labels |= {str(mission_id): title or type_ for mission_id, title, type_ in rows}
    return labels


@dataclass(frozen=True)
class MapProgress:
    """Where a parallel step (ctx.map) stands: counts of every item, the first items."""

    step_name: str
    total: int
    counts: dict[str, int]
    items: list[MapItem]

    @property
    def done(self) -> int:
        return self.counts.get(MapItem.Status.COMPLETED, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(MapItem.Status.FAILED, 0)

    @property
    def in_flight(self) -> int:
        return self.total - self.done - self.failed

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def map_progress(*, mission: Mission, shown: int | None = None) -> list[MapProgress]:
    """Every parallel step of the mission, in the order they started, with its first `shown`
    items (MAP_ITEMS_SHOWN): one query for the counts and, if any, one for the items."""
    shown = shown or MAP_ITEMS_SHOWN
    groups = (
        MapItem.objects.filter(mission=mission)
        .order_by()
        .values_list("step_name", "status")
        .annotate(n=Count("id"), first=Min("id"))
    )
    counts: dict[str, dict[str, int]] = {}
    first: dict[str, int] = {}
    for step_name, status, n, first_id in groups:
        counts.setdefault(step_name, {})[status] = n
        first[step_name] = min(first.get(step_name, first_id), first_id)
    if not counts:
        return []
    numbered = MapItem.objects.filter(mission=mission).annotate(
        rank=Window(RowNumber(), partition_by=[F("step_name")], order_by=[F("index")])
    )
    items: dict[str, list[MapItem]] = {}
    for item in numbered.filter(rank__lte=shown).defer("result").order_by("step_name", "index"):
        items.setdefault(item.step_name, []).append(item)
    return [
        MapProgress(
            step_name=name,
            total=sum(counts[name].values()),
            counts=counts[name],
            items=items.get(name, []),
        )
        for name in sorted(counts, key=first.__getitem__)
    ]


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
    waiting_on_map = Mission.objects.filter(
        status=Mission.Status.WAITING, waiting_on=Mission.WaitingOn.MAP
    )
    for mission in waiting_on_map.order_by("updated_at")[:limit]:
        reason = _map_stuck_reason(mission, late=late)
        if reason:
            stuck.append((mission, reason))
    waiting_on_children = Mission.objects.filter(
        status=Mission.Status.WAITING,
        waiting_on__in=(Mission.WaitingOn.MISSIONS, Mission.WaitingOn.ANY),
        waiting_since__lt=late,
    )
    for mission in waiting_on_children.order_by("updated_at")[:limit]:
        reason = _children_stuck_reason(mission)
        if reason:
            stuck.append((mission, reason))
    queued = Mission.objects.filter(
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.QUEUED,
        waiting_since__lt=late,
    )
    for mission in queued.order_by("waiting_since")[:limit]:
        stuck.append((mission, _queued_stuck_reason(mission)))
    rate_limited = Mission.objects.filter(
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.RATE_LIMIT,
        waiting_since__lt=late,
    ).exclude(wake_at__lt=late)  # an overdue one is listed above, as the scheduler's
    for mission in rate_limited.order_by("waiting_since")[:limit]:
        stuck.append((mission, _rate_limited_reason(mission, now=now)))
    return stuck


def _rate_limited_reason(mission: Mission, *, now) -> str:
    """A mission held by a rate limit: behind which, and for how long so far."""
    waited = int((now - mission.waiting_since).total_seconds() // 60)
    return (
        f"rate-limited in '{mission.current_step}' for {waited} min: waiting for "
        f"{mission.waiting_detail}; raise the limit if it is too low for the load"
    )


def _queued_stuck_reason(mission: Mission) -> str:
    """A long-queued mission: its place, and the missions holding the slots it waits for."""
    holders = (
        Mission.objects.filter(
            type=mission.type,
            concurrency_key=mission.concurrency_key,
            status__in=Mission.ACTIVE_STATUSES,
        )
        .exclude(waiting_on=Mission.WaitingOn.QUEUED)
        .order_by("created_at")
    )
    parts = [_where_child_stands(holder) for holder in holders[:5]]
    behind = "; ".join(parts) if parts else "none: the scheduler admits it on its next tick"
    return f"{mission_queue_label(mission=mission)}; the slots are held by: {behind}"


def _children_stuck_reason(mission: Mission) -> str | None:
    """Which children a long-waiting parent waits for, and where each of them stands."""
    step = Step.objects.filter(mission=mission, name=mission.current_step).first()
    wait = step.wait if step else {}
    ids = wait.get("missions") or [
        branch["id"] for branch in wait.get("branches", []) if branch.get("kind") == "mission"
    ]
    children = Mission.objects.filter(id__in=ids, parent_id=mission.id).exclude(
        status__in=Mission.FINAL_STATUSES
    )
    parts = [_where_child_stands(child) for child in children.order_by("created_at")[:10]]
    if not parts:
        return None
    return f"waiting in '{mission.current_step}' for child missions: " + "; ".join(parts)


def _where_child_stands(child: Mission) -> str:
    label = f"{child.type} #{str(child.id)[:8]} is {child.status}"
    if child.status == Mission.Status.WAITING and child.waiting_detail:
        return f"{label}, waiting for {child.waiting_detail}"
    if child.status == Mission.Status.PAUSED:
        return f"{label} by an operator: resume it"
    return label


def _map_stuck_reason(mission: Mission, *, late) -> str | None:
    """Why a mission waiting on parallel steps is not moving; None while its items move."""
    items = MapItem.objects.filter(mission=mission, step_name=mission.current_step)
    unfinished = ("pending", "running", "retrying")
    stalled = items.filter(status__in=unfinished, enqueued_at__isnull=False).filter(
        Q(lease_expires_at__lt=late) | Q(lease_expires_at__isnull=True, enqueued_at__lt=late)
    )
    if not stalled.exists():
        return None
    counts = items.aggregate(
        total=Count("id"),
        running=Count("id", filter=Q(status="running")),
        pending=Count("id", filter=Q(status__in=("pending", "retrying"))),
        failed=Count("id", filter=Q(status="failed")),
        done=Count("id", filter=Q(status="completed")),
    )
    oldest = items.filter(status="running").order_by("started_at").first()
    since = (
        f"; the oldest running is item {oldest.index} ({oldest.label}), started "
        f"{oldest.started_at:%Y-%m-%d %H:%M:%S} UTC"
        if oldest and oldest.started_at
        else ""
    )
    return (
        f"its parallel steps '{mission.current_step}' are not moving: {counts['running']} "
        f"running, {counts['pending']} pending, {counts['failed']} failed, {counts['done']} of "
        f"{counts['total']} done{since}: are workers and the scheduler running?"
    )


# --- concurrency limits (missions.concurrency): where a queued mission stands ---------------


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1-based
    total: int

    def __str__(self) -> str:
        return f"{ordinal(self.position)} of {self.total}"


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10)
    return f"{number}{suffix or 'th'}"


def mission_queue_place(*, mission: Mission) -> QueuePlace | None:
    """A queued mission's place in its queue ("3rd of 12"), by priority then age, as the
    next free slot would pick; None if the mission is not queued. One query."""
    if mission.status != Mission.Status.WAITING or mission.waiting_on != Mission.WaitingOn.QUEUED:
        return None
    ahead = Q(priority__gt=mission.priority) | Q(
        priority=mission.priority, created_at__lt=mission.created_at
    )
    counts = Mission.objects.filter(
        type=mission.type,
        concurrency_key=mission.concurrency_key,
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.QUEUED,
    ).aggregate(total=Count("id"), ahead=Count("id", filter=ahead))
    return QueuePlace(position=counts["ahead"] + 1, total=max(counts["total"], 1))


def mission_queue_label(*, mission: Mission) -> str:
    """Like "Queued (3rd of 12) for a slot of Refund for C-1 (5 at once)"; "" if not queued."""
    place = mission_queue_place(mission=mission)
    if place is None:
        return ""
    return f"Queued ({place}) for {mission.waiting_detail or 'a concurrency slot'}"


def concurrency_limits_with_use(limits: QuerySet) -> QuerySet:
    """ConcurrencyLimit rows annotated with `running` (missions holding a slot: running,
    waiting on anything but a slot, or paused) and `queued` (missions waiting for one)."""
    queued = Q(waiting_on=Mission.WaitingOn.QUEUED)

    def count(condition: Q) -> Coalesce:
        missions = (
            Mission.objects.filter(
                type=OuterRef("mission_type"),
                concurrency_key=OuterRef("key"),
                status__in=Mission.ACTIVE_STATUSES,
            )
            .filter(condition)
            .order_by()
            .values("type")
            .annotate(n=Count("id"))
            .values("n")
        )
        return Coalesce(Subquery(missions), 0)

    return limits.annotate(running=count(~queued), queued=count(queued))
