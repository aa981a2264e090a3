"""Every way a mission changes, outside the engine's own checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from decisions.waits import (
    decisions_remind_and_escalate,
    decisions_settled_for_any_wait,
    decisions_settled_for_waiting_step,
    decisions_withdraw,
)
from missions import postgres_fast_paths
from missions.concurrency import (
    PriorityError,
    admit_lost_wakes,
    concurrency_key_for,
    mission_admit_or_queue,
    mission_slot_freed,
    priority_checked,
)
from missions.engine import enqueue_advance
from missions.fan_out import map_items_recover, map_items_retry
from missions.models import Event, EventDelivery, Mission, Step
from missions.runtime import get_definition
from missions.waits import mission_wake, mission_wake_parent
from observations.services import observation_record
from studiox.compiled_query import CompiledQuery
from studiox.safe_input import json_problem

Status = Mission.Status


class MissionError(Exception):
    """A request about a mission that cannot be done; the message says why."""


class MissionInputError(MissionError):
    """Bad mission input; `errors` maps field paths to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]]):
        super().__init__(message)
        self.errors = errors


class UnknownMissionType(MissionError):
    pass


class MissionConflict(MissionError):
    """The mission is not in a state that allows this (or an idempotency key was reused)."""


class IdempotencyKeyReused(MissionConflict):
    """The idempotency key already started `mission` from a different request."""

    def __init__(self, message: str, mission: Mission):
        super().__init__(message)
        self.mission = mission


class MissionPermissionDenied(MissionError):
    pass


def _fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _input_errors(exc: PydanticValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "input"
        errors.setdefault(path, []).append(error["msg"])
    return errors


def _refuse_unstorable(**fields: Any) -> None:
    """The database's own limits, checked here too so that every way in (API, MCP, forms,
    commands) refuses a NUL or an over-deep document with the field's name, never a crash."""
    problem = json_problem(fields)
    if problem is not None:
        raise MissionInputError(problem.message, {problem.path: [problem.message]})


def _wake_on_commit(mission_id, *, priority: int = 0) -> None:
    transaction.on_commit(lambda: enqueue_advance(mission_id, priority=priority))


@dataclass(frozen=True)
class StartResult:
    mission: Mission
    created: bool


def mission_start(
    *,
    type: str,
    input: Any,
    started_by: AbstractBaseUser | None = None,
    idempotency_key: str = "",
    parent: Mission | None = None,
    parent_step: str = "",
    title: str = "",
    priority: int = 0,
) -> StartResult:
    """Validate the input against the mission type's model and start the mission.

    With an `idempotency_key`, a repeat by the same user returns the first mission
    (`created=False`); the same key with a different request raises MissionConflict.
    A child mission names its `parent` and the `parent_step` that started it. `title` names
    this mission for people (default: the mission type's title). A higher `priority`
    (-10..10) takes free concurrency slots and worker time first. A type declaring
    `concurrency=N` with N unfinished already stores the mission queued (missions.concurrency).
    """
    try:
        priority = priority_checked(priority)
    except PriorityError as exc:
        raise MissionInputError("invalid priority", {"priority": [str(exc)]}) from exc
    definition = get_definition(type)
    if definition is None:
        raise UnknownMissionType(f"unknown mission type '{type}'")
    try:
        validated = definition.validate_input(input)
    except PydanticValidationError as exc:
        raise MissionInputError("invalid mission input", _input_errors(exc)) from exc
    except TypeError as exc:
        raise MissionInputError("invalid mission input", {"input": [str(exc)]}) from exc
    _refuse_unstorable(input=validated, idempotency_key=idempotency_key, title=title)
    if len(title) > Mission._meta.get_field("title").max_length:
        raise MissionInputError("invalid mission title", {"title": ["at most 200 characters"]})
    slot_key = _concurrency_key(definition, validated)
    fingerprint = _fingerprint({"type": type, "input": validated})
    user = started_by if started_by is not None and started_by.is_authenticated else None
    if idempotency_key:
        existing = _mission_for_key(user, idempotency_key, fingerprint)
        if existing:
            return StartResult(existing, False)
    limit = definition.concurrency
    # An unlimited start is one INSERT, atomic on its own: no BEGIN and COMMIT around it (two
    # round trips of every API start), unless a caller's transaction is open (a checkpoint).
    alone = limit is None and not transaction.get_connection().in_atomic_block
    try:
        with contextlib.nullcontext() if alone else transaction.atomic():
            mission = Mission(
                type=definition.name,
                version=definition.version,
                title=title or definition.title,
                input=validated,
                started_by=user,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                enqueued_at=timezone.now(),
                parent=parent,
                parent_step=parent_step,
                priority=priority,
                concurrency_key=slot_key,
            )
            if postgres_fast_paths.on_postgresql():
                postgres_fast_paths.insert_mission(mission)
            else:
                mission.save(force_insert=True)
            if limit is None or mission_admit_or_queue(mission, limit=limit):
                _wake_on_commit(mission.id, priority=priority)  # at once when `alone`
    except IntegrityError:
        # Two identical requests raced: the other one created it.
        existing = _mission_for_key(user, idempotency_key, fingerprint)
        if existing is None:
            raise
        return StartResult(existing, False)
    return StartResult(mission, True)


def _concurrency_key(definition, validated: dict) -> str:
    try:
        return concurrency_key_for(definition, validated)
    except Exception as exc:  # the author's key function refused this input
        message = f"concurrency_key could not key this input: {type(exc).__name__}: {exc}"
        raise MissionInputError("invalid mission input", {"input": [message]}) from exc


def _mission_for_key(user, key: str, fingerprint: str) -> Mission | None:
    existing = Mission.objects.filter(started_by=user, idempotency_key=key).first()
    if existing and existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key '{key}' was already used for a different request", existing
        )
    return existing


def _changed(mission_id, allowed: tuple[str, ...], **updates) -> Mission:
    """Apply `updates` only if the mission is in one of the `allowed` states, in one
    conditional UPDATE (no read-then-write)."""
    changed = Mission.objects.filter(id=mission_id, status__in=allowed).update(
        updated_at=timezone.now(), **updates
    )
    mission = Mission.objects.filter(id=mission_id).first()
    if mission is None:
        raise MissionError(f"mission {mission_id} does not exist")
    if not changed:
        raise MissionConflict(
            f"mission is {mission.status}; this needs it to be {' or '.join(allowed)}"
        )
    return mission


@transaction.atomic
def mission_cancel(*, mission: Mission, by: AbstractBaseUser | None, reason: str = "") -> Mission:
    """Cancel any mission that has not finished; its pending decisions are withdrawn."""
    who = by.get_username() if by else "system"
    verdict = {"outcome": "cancelled", "by": who, "reason": reason}
    active = (Status.PENDING, Status.RUNNING, Status.WAITING, Status.PAUSED)
    # Children first: the lock order is a child's row, then its parent's (as when a child
    # finishes and wakes its parent), so cancelling never deadlocks with a finishing child.
    _cancel_children(mission, by=by, active=active)
    mission = _changed(
        mission.id,
        active,
        status=Status.CANCELLED,
        cancelled_by=by,
        verdict=verdict,
        cancel_requested_at=timezone.now(),
        finished_at=timezone.now(),
        waiting_on="",
        waiting_detail="",
        wake_at=None,
    )
    decisions_withdraw(mission_id=mission.id, by=by)
    mission_wake_parent(mission=mission)
    mission_slot_freed(mission)  # the next queued mission of its type takes the slot
    observation_record(
        mission=mission,
        kind="cancelled",
        message=f"Cancelled by {who}" + (f": {reason}" if reason else ""),
        data={"by": who},
    )
    return mission


def _cancel_children(mission: Mission, *, by: AbstractBaseUser | None, active: tuple) -> None:
    for child in Mission.objects.filter(parent_id=mission.id, status__in=active).order_by("id"):
        with contextlib.suppress(MissionConflict):  # it finished meanwhile
            mission_cancel(mission=child, by=by, reason="its parent mission was cancelled")


@transaction.atomic
def mission_pause(*, mission: Mission, by: AbstractBaseUser | None) -> Mission:
    """Hold a mission where it is; a step already running still records its result."""
    mission = _changed(
        mission.id, (Status.PENDING, Status.RUNNING, Status.WAITING), status=Status.PAUSED
    )
    who = by.get_username() if by else "system"
    observation_record(mission=mission, kind="paused", message=f"Paused by {who}", data={"by": who})
    return mission


@transaction.atomic
def mission_resume(*, mission: Mission, by: AbstractBaseUser | None) -> Mission:
    """Let a paused mission go on; waits it was in are re-checked and resumed or re-entered.
    One paused while queued for a concurrency slot queues again (in its place)."""
    mission = _changed(
        mission.id, (Status.PAUSED,), status=Status.RUNNING, enqueued_at=timezone.now()
    )
    who = by.get_username() if by else "system"
    observation_record(
        mission=mission, kind="resumed", message=f"Resumed by {who}", data={"by": who}
    )
    if mission.waiting_on == Mission.WaitingOn.QUEUED:
        Mission.objects.filter(id=mission.id).update(status=Status.WAITING, enqueued_at=None)
        mission.status = Status.WAITING
        mission_slot_freed(mission)  # admitted now if a slot is free
        mission.refresh_from_db()
        return mission
    _wake_on_commit(mission.id, priority=mission.priority)
    return mission


@transaction.atomic
def mission_retry(*, mission: Mission, by: AbstractBaseUser | None) -> Mission:
    """Run a failed mission again from its failed step, with a fresh retry budget."""
    if mission.finished_at and mission.finished_at < timezone.now() - timedelta(
        days=settings.STUDIOX_RETENTION_DAYS
    ):
        # Its checkpoints were purged: a retry would replay from nothing and repeat effects.
        raise MissionConflict("this mission's checkpoints are past retention; start a new one")
    mission = _changed(
        mission.id,
        (Status.FAILED,),
        status=Status.PENDING,
        error="",
        finished_at=None,
        lost_leases=0,
        lease_owner="",
        lease_expires_at=None,
        enqueued_at=timezone.now(),
        # Steps change outside a lease here: a new token tells workers their cache is stale.
        fencing_token=F("fencing_token") + 1,
    )
    map_items_retry(mission=mission)  # a failed map waits again on its unfinished items
    for step in Step.objects.filter(mission=mission, status=Step.Status.FAILED):
        step.status = Step.Status.RETRYING
        step.wait = {"budget_start": step.attempts}
        step.error = ""
        step.finished_at = None
        step.save(update_fields=["status", "wait", "error", "finished_at"])
    who = by.get_username() if by else "system"
    observation_record(
        mission=mission, kind="resumed", message=f"Retried by {who}", data={"by": who}
    )
    definition = get_definition(mission.type)
    limit = definition.concurrency if definition else None
    if limit is None or mission_admit_or_queue(mission, limit=limit):  # queues for a slot again
        _wake_on_commit(mission.id, priority=mission.priority)
    return mission


@dataclass(frozen=True)
class EventResult:
    event: Event
    created: bool
    delivered_to: list[str]


def event_deliver(
    *,
    event: str,
    key: str = "",
    payload: Any = None,
    sent_by: AbstractBaseUser | None = None,
    idempotency_key: str = "",
) -> EventResult:
    """Deliver an external event to every mission waiting for it, or keep it for the first
    mission that waits for it later."""
    _refuse_unstorable(event=event, key=key, payload=payload, idempotency_key=idempotency_key)
    user = sent_by if sent_by is not None and sent_by.is_authenticated else None
    if idempotency_key:
        existing = _event_for_key(user, idempotency_key, event, key, payload)
        if existing:
            return existing
    try:
        with transaction.atomic():
            waiting = _missions_waiting_for(event, key or "")
            row = Event.objects.create(
                name=event,
                key=key or "",
                payload=payload,
                sent_by=user,
                idempotency_key=idempotency_key,
                delivered_at=timezone.now() if waiting else None,
            )
            delivered = _deliver(row, waiting)
    except IntegrityError:
        existing = _event_for_key(user, idempotency_key, event, key, payload)
        if existing is None:
            raise
        return existing
    return EventResult(row, True, delivered)


def _event_for_key(user, idem: str, event: str, key: str, payload: Any) -> EventResult | None:
    row = Event.objects.filter(sent_by=user, idempotency_key=idem).first()
    if row is None:
        return None
    if (row.name, row.key, _fingerprint(row.payload)) != (event, key or "", _fingerprint(payload)):
        raise MissionConflict(f"Idempotency-Key '{idem}' was already used for a different event")
    delivered = [str(m) for m in row.deliveries.values_list("mission_id", flat=True)]
    return EventResult(row, False, delivered)


# `ctx.wait_any` with an Event branch waits for its event too (under the wait's own name).
EVENT_WAITS = (Mission.WaitingOn.EVENT, Mission.WaitingOn.ANY)


def _missions_waiting_for(event: str, key: str) -> list[Mission]:
    # Locked (in one order, so two deliveries cannot deadlock): a worker writes a wait or
    # claims an event only under the same row lock.
    return list(
        Mission.objects.select_for_update()
        .filter(
            status=Status.WAITING,
            waiting_on__in=EVENT_WAITS,
            waiting_event=event,
            waiting_event_key=key,
        )
        .order_by("id")
    )


def _deliver(row: Event, waiting: list[Mission]) -> list[str]:
    delivered = []
    for mission in waiting:
        # No delivery can exist for this wait yet: each is written under this row lock, and
        # its writer either woke the mission (here) or completed the wait (a worker).
        EventDelivery.objects.create(mission=mission, step_name=mission.current_step, event=row)
        if mission_wake(mission_id=mission.id):
            delivered.append(str(mission.id))
            observation_record(
                mission=mission,
                kind="event_received",
                step_name=mission.current_step,
                message=f"Event '{row.name}' arrived",
                data={"event": row.name, "key": row.key},
            )
    if waiting and not delivered:  # kept for the next waiter, never lost
        Event.objects.filter(id=row.id).update(delivered_at=None)
    return delivered


# --- the scheduler -------------------------------------------------------------------------

TICK_BATCH = 500


def missions_tick() -> dict[str, int]:
    """One scheduler pass (Celery beat, every STUDIOX_TICK_SECONDS): wake due timers, time-outs
    and back-offs; re-enqueue missions whose worker died or whose message was lost; remind
    and escalate overdue decisions ("reminded", "escalated")."""
    return {
        **decisions_remind_and_escalate(),
        "woken": _wake_due(),
        "events": _wake_missed_events(),
        "decisions": _wake_settled_decisions(),
        "missions": _wake_missed_mission_ends(),
        "recovered": _requeue_lost(),
        "admitted": admit_lost_wakes(),
        "map_items": map_items_recover(),
    }


# The tick's queries, composed once (studiox.compiled_query): they run every second.
_DUE = CompiledQuery(
    lambda now: (
        Mission.objects.filter(status=Status.WAITING, wake_at__lte=now)
        .order_by("wake_at")
        .values_list("id", flat=True)[:TICK_BATCH]
    )
)
# An event that arrived while its mission was committing its wait met no waiter; the wait did
# not see the event either. The database still has both, so they are joined here.
_MISSED_EVENTS = CompiledQuery(
    lambda: (
        Mission.objects.filter(status=Status.WAITING, waiting_on__in=EVENT_WAITS)
        .exclude(waiting_event="")
        .filter(
            Exists(
                Event.objects.filter(
                    name=OuterRef("waiting_event"),
                    key=OuterRef("waiting_event_key"),
                    delivered_at=None,
                )
            )
        )
        .values_list("id", flat=True)[:TICK_BATCH]
    )
)
# Deciding locks the mission row, so a decision cannot slip past a worker re-entering its wait;
# this join is the backstop the database makes cheap (messages are hints).
_SETTLED_DECISIONS = CompiledQuery(
    lambda: (
        Mission.objects.filter(status=Status.WAITING, waiting_on=Mission.WaitingOn.DECISION)
        .filter(Exists(decisions_settled_for_waiting_step()))
        .values_list("id", flat=True)[:TICK_BATCH]
    )
)
# A child's end wakes its parent in the same transaction; this finds a parent whose child (or
# decision of a wait_any) settled after the parent last wrote its wait.
_MISSED_MISSION_ENDS = CompiledQuery(
    lambda: (
        Mission.objects.filter(
            status=Status.WAITING,
            waiting_on__in=(Mission.WaitingOn.MISSIONS, Mission.WaitingOn.ANY),
        )
        .filter(
            Exists(
                Mission.objects.filter(
                    parent=OuterRef("id"), finished_at__gte=OuterRef("updated_at")
                )
            )
            | Exists(decisions_settled_for_any_wait())
        )
        .values_list("id", flat=True)[:TICK_BATCH]
    )
)
# A lease that ran out lost its worker; a mission never leased long after it was enqueued
# lost its message.
_LOST = CompiledQuery(
    lambda now, enqueued_before: (
        Mission.objects.filter(status__in=Mission.RUNNABLE_STATUSES)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True, enqueued_at__lt=enqueued_before)
            | Q(lease_expires_at__isnull=True, enqueued_at__isnull=True)
        )
        .values_list("id", "priority")[:TICK_BATCH]
    )
)


def _wake_due() -> int:
    due = _DUE.values(now=timezone.now())
    return sum(mission_wake(mission_id=mission_id) for mission_id in due)


def _wake_missed_events() -> int:
    return sum(mission_wake(mission_id=mission_id) for mission_id in _MISSED_EVENTS.values())


def _wake_settled_decisions() -> int:
    return sum(mission_wake(mission_id=mission_id) for mission_id in _SETTLED_DECISIONS.values())


def _wake_missed_mission_ends() -> int:
    return sum(mission_wake(mission_id=mission_id) for mission_id in _MISSED_MISSION_ENDS.values())


def _requeue_lost() -> int:
    now = timezone.now()
    grace = timedelta(seconds=max(settings.STUDIOX_LEASE_SECONDS, 5))
    rows = _LOST.rows(now=now, enqueued_before=now - grace)
    if rows:
        Mission.objects.filter(id__in=[mission_id for mission_id, _ in rows]).update(
            enqueued_at=now
        )
        for mission_id, priority in rows:
            enqueue_advance(mission_id, priority=priority)
    return len(rows)
