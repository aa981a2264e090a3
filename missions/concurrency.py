"""Concurrency limits: `@mission(..., concurrency=N, concurrency_key=fn)` (docs/authoring.md).

A mission of a limited type holds a slot from its admission until it is final, whatever it
does meanwhile (runs, waits for a decision, is paused). A mission over the limit is stored
WAITING on `queued`: it costs a row, no worker and no broker message, and is admitted when a
slot frees, in the transaction that freed it.

- The slot count of (type, key) is serialised by its ConcurrencyLimit row: admitting at start,
  freeing at a final state and the scheduler's backstop all begin by UPDATE-ing that row
  (PostgreSQL's row lock; SQLite's database write lock), and only then count. So a limit holds
  with any number of workers.
- Lock order: a mission's own row (the engine's fence, a cancel), then the limit row, then
  queued missions' rows, taken with SKIP LOCKED so that freeing a slot never waits for a
  queued mission someone is cancelling (that cancel frees nothing, and the tick admits later).
- A worker that dies keeps its mission's slot: the mission is still unfinished, the scheduler
  recovers it with its lease and it finishes, which frees the slot. Nothing leaks.
- Queue order: priority (higher first), then age; every ADMIT_OLDEST_EVERY-th slot handed to
  a queued mission (ConcurrencyLimit.admissions counts them) goes to the longest-waiting one
  whatever its priority, so low priorities never starve.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from missions.handover import advance_woken
from missions.models import ConcurrencyLimit, Mission
from missions.runtime import MissionDefinition, get_definition
from observations.services import observation_record
from studiox.compiled_query import CompiledQuery

Status = Mission.Status
QUEUED = Mission.WaitingOn.QUEUED
ADMIT_OLDEST_EVERY = 5
PRIORITY_RANGE = (-10, 10)
KEY_LENGTH = Mission._meta.get_field("concurrency_key").max_length


class PriorityError(ValueError):
    """A priority outside PRIORITY_RANGE, or not a whole number."""


def priority_checked(value: Any) -> int:
    """`value` as a mission priority, or PriorityError saying what is allowed."""
    low, high = PRIORITY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PriorityError(f"priority must be a whole number from {low} to {high}")
    return value


def concurrency_key_for(definition: MissionDefinition, validated_input: dict) -> str:
    """The key this mission's slots are counted under ("" for the whole type)."""
    if definition.concurrency is None or definition.concurrency_key is None:
        return ""
    key = definition.concurrency_key(definition.parse_input(validated_input))
    return "" if key is None else str(key)[:KEY_LENGTH]


def is_limited(mission_type: str) -> bool:
    """Whether the type's missions hold slots (the engine writes an unlimited one's end alone)."""
    return _limit_of(mission_type) is not None


def _limit_of(mission_type: str) -> int | None:
    """The limit the latest code of the type declares; None when unlimited."""
    definition = get_definition(mission_type)
    return definition.concurrency if definition else None


def _lock_limit(*, mission_type: str, key: str, limit: int) -> ConcurrencyLimit:
    """The (type, key) limit row, locked until the transaction ends; created on first use.
    PostgreSQL locks it with SELECT ... FOR UPDATE (one statement on the hot path); SQLite
    has no row locks, so an UPDATE comes first there, taking the database's write lock."""
    rows = ConcurrencyLimit.objects.filter(mission_type=mission_type, key=key)
    if connection.features.has_select_for_update:
        row = rows.select_for_update().first()
        if row is not None:
            if row.limit != limit:  # the code's limit changed with a deploy
                rows.update(limit=limit, updated_at=timezone.now())
            return row
    elif rows.update(limit=limit, updated_at=timezone.now()):
        return rows.get()
    try:
        with transaction.atomic():
            ConcurrencyLimit.objects.create(mission_type=mission_type, key=key, limit=limit)
    except IntegrityError:  # created meanwhile by another start: lock that one
        rows.update(limit=limit, updated_at=timezone.now())
    return rows.select_for_update().get()


def _holding_slots(mission_type: str, key: str) -> QuerySet[Mission]:
    return Mission.objects.filter(
        type=mission_type, concurrency_key=key, status__in=Mission.ACTIVE_STATUSES
    ).exclude(waiting_on=QUEUED)


def _queued(mission_type: str, key: str) -> QuerySet[Mission]:
    return Mission.objects.filter(
        type=mission_type, concurrency_key=key, status=Status.WAITING, waiting_on=QUEUED
    )


def slot_label(*, mission_type: str, key: str, limit: int) -> str:
    """What a queued mission waits for, in business terms."""
    definition = get_definition(mission_type)
    title = definition.title if definition else mission_type
    scope = f" for {key}" if key else ""
    return f"a slot of {title}{scope} ({limit} at once)"


# --- admission at start, at retry and at resume ---------------------------------------------


def mission_admit_or_queue(mission: Mission, *, limit: int) -> bool:
    """Inside the start's (or retry's) transaction, with `mission` written as runnable: keep
    it runnable if (type, key) has a free slot, else turn it into a queued mission. True if
    admitted (the caller enqueues it), False if queued."""
    _lock_limit(mission_type=mission.type, key=mission.concurrency_key, limit=limit)
    holding = _holding_slots(mission.type, mission.concurrency_key).exclude(id=mission.id)
    if holding.count() < limit:
        return True
    label = slot_label(mission_type=mission.type, key=mission.concurrency_key, limit=limit)
    now = timezone.now()
    Mission.objects.filter(id=mission.id).update(
        status=Status.WAITING,
        waiting_on=QUEUED,
        waiting_detail=label,
        waiting_since=now,
        wake_at=None,
        enqueued_at=None,
        updated_at=now,
    )
    mission.status, mission.waiting_on, mission.waiting_detail = Status.WAITING, QUEUED, label
    mission.waiting_since, mission.enqueued_at = now, None
    observation_record(
        mission=mission,
        kind="waiting",
        message=f"Queued for {label}",
        data={"waiting_on": QUEUED, "key": mission.concurrency_key},
    )
    return False


# --- a slot frees: admit the next ------------------------------------------------------------


def mission_slot_freed(mission: Mission) -> int:
    """`mission` reached a final state (in the transaction that wrote it): give its slot to
    the next queued mission of its type and key. How many were admitted."""
    limit = _limit_of(mission.type)
    if limit is None or not _queued(mission.type, mission.concurrency_key).exists():
        # Nobody queues (the common case under a generous limit): no lock on the limit row.
        # A start that queued itself meanwhile, having counted this mission's slot as held,
        # is admitted by the next end of its type or by the scheduler's admit_lost_wakes.
        return 0
    return admit_queued(mission_type=mission.type, key=mission.concurrency_key, limit=limit)


def admit_queued(*, mission_type: str, key: str, limit: int) -> int:
    """Admit queued missions of (type, key) into the free slots, in queue order; each is
    enqueued when the transaction commits."""
    with transaction.atomic(savepoint=False):  # no savepoint inside an engine checkpoint
        row = _lock_limit(mission_type=mission_type, key=key, limit=limit)
        free = limit - _holding_slots(mission_type, key).count()
        admitted = 0
        admissions = row.admissions
        while admitted < free:
            oldest_first = (admissions + 1) % ADMIT_OLDEST_EVERY == 0
            chosen = _next_queued(mission_type, key, oldest_first=oldest_first)
            if chosen is None:
                break
            _admit(chosen, freed_for=slot_label(mission_type=mission_type, key=key, limit=limit))
            admissions += 1
            admitted += 1
        if admitted:
            ConcurrencyLimit.objects.filter(id=row.id).update(admissions=admissions)
    return admitted


def _next_queued(mission_type: str, key: str, *, oldest_first: bool) -> Mission | None:
    order = ("created_at", "id") if oldest_first else ("-priority", "created_at", "id")
    return (
        _queued(mission_type, key)
        .select_for_update(skip_locked=True)
        .order_by(*order)
        .only("id", "type", "priority", "concurrency_key", "parent_id", "title")
        .first()
    )


def _admit(mission: Mission, *, freed_for: str) -> None:
    now = timezone.now()
    admitted = _queued(mission.type, mission.concurrency_key).filter(id=mission.id)
    if not admitted.update(
        status=Status.RUNNING,
        waiting_on="",
        waiting_detail="",
        waiting_since=None,
        enqueued_at=now,
        updated_at=now,
    ):
        return
    observation_record(
        mission=mission,
        kind="resumed",
        message=f"Got {freed_for}",
        data={"waiting_on": QUEUED, "key": mission.concurrency_key},
    )
    mission_id, priority = mission.id, mission.priority
    transaction.on_commit(lambda: advance_woken(mission_id, priority=priority))


# Composed once (studiox.compiled_query): the scheduler asks every second.
_QUEUED_GROUPS = CompiledQuery(
    lambda: (
        Mission.objects.filter(status=Status.WAITING, waiting_on=QUEUED)
        .order_by()
        .values_list("type", "concurrency_key")
        .distinct()[:500]
    )
)


def admit_lost_wakes() -> int:
    """The scheduler's backstop: admit queued missions wherever slots are free (a slot freed
    by a path that did not admit, or a limit raised by a deploy). Missions admitted."""
    admitted = 0
    for mission_type, key in _QUEUED_GROUPS.rows():
        limit = _limit_of(mission_type)
        # A type whose code no longer declares a limit lets its queue go at once.
        admitted += admit_queued(mission_type=mission_type, key=key, limit=limit or 2**31 - 1)
    return admitted
