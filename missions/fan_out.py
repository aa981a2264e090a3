"""`ctx.map`: parallel steps. Each item of a map is its own task, lease and checkpoint.

The map is one Step row (kind "map") at its position in the mission; its items are MapItem
rows. The mission waits on the map (a row, no worker) while the items run on the workers.

An item holds a **slot** while `enqueued_at` is set and it is not finished: at most
`max_parallel` items hold one at a time. The map has **settled** when no item holds a slot
any more and either every item is done or one failed; then the mission is woken, exactly once:
the wake is a conditional UPDATE of the mission's row under its lock (`_settle`), so of two
last items recorded at once only one wakes it.

A map whose every item got a slot at the start (no `max_parallel`, or one at least as large
as the map) has no slot to pass on: an item records its result in its own transaction, without
the mission's lock, and after that commit checks in one read whether the map has settled. Of
items committing side by side, the last to commit sees the others' rows, so one of them at
least finds the map settled; only that one takes the lock, and so does an item that finds the
mission running (a pass of it may be committing its wait on the map). (Counting the items
under the mission's lock in each item's transaction would serialise the items' commits.) A
crash between the commit and the check leaves a settled map unwoken: the scheduler's backstop
wakes it.

A map with fewer slots than items passes each freed slot on to the next pending item under
the mission's row lock, in the transaction that frees it, and its task is sent after commit.
Lock order: an item's row first, then the mission's row.

A worker runs an item by replaying the mission function with its recorded steps, executing
nothing, up to the map's call (`_capture`), which hands back `fn` and the items; then it runs
`fn(items[i])` inside a transaction that commits the item's result fenced by the item's
token, so an item runs like `ctx.transaction`: its database writes commit exactly once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import CharField, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from psycopg.pq import TransactionStatus

from missions import postgres_fast_paths
from missions.engine import (
    IncompatibleCodeChange,
    MissionContext,
    Outcome,
    _checked_size,
    _Yield,
    to_json,
)
from missions.lease import Heartbeat, lease_expiry, worker_identity
from missions.models import MapItem, Mission, Step
from missions.runtime import DEFAULT_RETRY, NonRetryableError, RetryPolicy, get_definition
from missions.waits import mission_wake
from observations.services import observation_record
from studiox import task_queue
from studiox.compiled_query import CompiledQuery

logger = logging.getLogger(__name__)

MAP_ITEM_TASK = "missions.map_item"  # missions.tasks.run_map_item
ItemStatus = MapItem.Status
UNFINISHED = (ItemStatus.PENDING, ItemStatus.RUNNING, ItemStatus.RETRYING)
# An item's task may run only while its mission may move: not paused, cancelled or finished.
MOVING = (Mission.Status.PENDING, Mission.Status.RUNNING, Mission.Status.WAITING)


# --- the mission's side: ctx.map -----------------------------------------------------------


class _MapCall(BaseException):
    """Ends a capturing replay at the map's call, carrying what the item task needs. A
    BaseException so that a mission's `except Exception` cannot swallow it."""

    def __init__(
        self, fn: Callable[[Any], Any], items: list, retry: RetryPolicy, max_parallel: int | None
    ):
        self.fn, self.items, self.retry, self.max_parallel = fn, items, retry, max_parallel


def map_step(
    ctx: MissionContext,
    name: str,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_parallel: int | None,
    retry: RetryPolicy | None,
) -> list[Any]:
    """What `ctx.map` does in a mission's pass (see the module's docstring)."""
    if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
        raise ValueError("ctx.map: max_parallel must be a positive integer or None")
    items = list(items)
    if ctx.capture_map == name:
        ctx.dry_run = False  # this position is checked, then the replay stops here
        ctx._enter(name, Step.Kind.MAP)
        ctx.dry_run = True  # so that a `ctx` call inside `fn` can write nothing
        raise _MapCall(fn, items, retry or DEFAULT_RETRY, max_parallel)
    _check_count(ctx, name, len(items))
    step = ctx._enter(name, Step.Kind.MAP)
    if step and step.status == Step.Status.COMPLETED:
        return step.result
    if step is None and not items:
        checkpoint = ctx._completed_checkpoint(name, Step.Kind.MAP, None, result=[], attempts=1)
        ctx._commit(checkpoint)
        return ctx._after_checkpoint(checkpoint.step)
    limit = max_parallel or len(items)
    with ctx._commit_block() as commit:  # its fence holds the mission's row lock
        if step is None:
            _insert_items(ctx.mission.id, name, items)
        progress = _progress(ctx.mission.id, name)
        if not progress.settled:
            to_send = _fill_slots(ctx.mission.id, name, progress, limit=limit, resend=True)
            checkpoint = ctx._waiting_checkpoint(
                name,
                Step.Kind.MAP,
                step,
                wait={"count": len(items), "max_parallel": max_parallel},
                waiting_on=Mission.WaitingOn.MAP,
                label=progress.label(name),
                until=None,
            )
            commit(checkpoint)
            _send_on_commit(ctx.mission.id, name, to_send)
    if not progress.settled:
        raise _Yield(Outcome.WAITING)
    # Settled stays settled: no item takes a slot again until the mission itself gives one.
    return _finish(ctx, name, step, progress)


def _check_count(ctx: MissionContext, name: str, count: int) -> None:
    """A replay must hand the map the same number of items it was first given."""
    recorded = ctx._steps[ctx._position] if ctx.replaying else None
    if recorded is None or recorded.name != name or recorded.kind != Step.Kind.MAP:
        return
    expected = recorded.wait.get("count")
    if recorded.status != Step.Status.COMPLETED and expected not in (None, count):
        raise IncompatibleCodeChange(
            f"mission code changed incompatibly: parallel steps '{name}' were started with "
            f"{expected} items, the code now gives {count}"
        )


def _insert_items(mission_id, name: str, items: list) -> None:
    MapItem.objects.bulk_create(
        MapItem(
            mission_id=mission_id,
            step_name=name,
            index=index,
            label=str(item)[:200],
            idempotency_key=f"{mission_id}:{name}:{index}",
        )
        for index, item in enumerate(items)
    )


def _finish(ctx: MissionContext, name: str, step: Step, progress: _Progress) -> list[Any]:
    """Complete the map with its results in input order, or fail it naming the item."""
    if progress.failed:
        failed = (
            MapItem.objects.filter(
                mission_id=ctx.mission.id, step_name=name, status=ItemStatus.FAILED
            )
            .order_by("index")
            .first()
        )
        message = f"item {failed.index} of '{name}' failed: {failed.error}"
        ctx._fail_step(name, Step.Kind.MAP, step, attempts=1, message=message)
    results = list(
        MapItem.objects.filter(mission_id=ctx.mission.id, step_name=name)
        .order_by("index")
        .values_list("result", flat=True)
    )
    checkpoint = ctx._completed_checkpoint(
        name, Step.Kind.MAP, step, result=_checked_size(name, results), attempts=1
    )
    checkpoint.carry_on = True  # the pass that completes a map did no work of its own
    ctx._commit(checkpoint)
    return ctx._after_checkpoint(checkpoint.step)


# --- progress and slots (callers hold the mission's row lock) -------------------------------


@dataclass(frozen=True)
class _Progress:
    total: int
    completed: int
    failed: int
    holding: int  # items holding a slot: enqueued, running or backing off
    waiting: int  # pending items without a slot

    @property
    def settled(self) -> bool:
        return not self.holding and (bool(self.failed) or not self.waiting)

    def label(self, name: str) -> str:
        return f"parallel steps '{name}': {self.completed} of {self.total} done"


def _progress(mission_id, name: str) -> _Progress:
    counts = MapItem.objects.filter(mission_id=mission_id, step_name=name).aggregate(
        total=Count("id"),
        completed=Count("id", filter=Q(status=ItemStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=ItemStatus.FAILED)),
        holding=Count("id", filter=Q(status__in=UNFINISHED, enqueued_at__isnull=False)),
        waiting=Count("id", filter=Q(status=ItemStatus.PENDING, enqueued_at__isnull=True)),
    )
    return _Progress(**counts)


def _fill_slots(
    mission_id, name: str, progress: _Progress, *, limit: int, resend: bool = False
) -> list[int]:
    """Give free slots to pending items, lowest index first; the indexes to send. With
    `resend` (the mission's own pass), items that hold a slot but no lease are sent again
    too: their message may have been skipped while the mission was paused, and a duplicate
    is harmless (taking an item is conditional)."""
    items = MapItem.objects.filter(mission_id=mission_id, step_name=name)
    again = (
        list(
            items.filter(
                status=ItemStatus.PENDING, enqueued_at__isnull=False, lease_expires_at__isnull=True
            ).values_list("index", flat=True)
        )
        if resend
        else []
    )
    free = 0 if progress.failed else max(0, limit - progress.holding)
    if not free:
        return again
    chosen = list(
        items.filter(status=ItemStatus.PENDING, enqueued_at__isnull=True)
        .order_by("index")
        .values_list("index", flat=True)[:free]
    )
    items.filter(index__in=chosen, enqueued_at__isnull=True).update(enqueued_at=timezone.now())
    return again + chosen


def _send_on_commit(mission_id, name: str, indexes: list[int]) -> None:
    if indexes:
        transaction.on_commit(lambda: enqueue_items(mission_id, name, indexes))


def enqueue_items(mission_id, name: str, indexes: list[int]) -> None:
    """Send the items' tasks, all in one round trip on Redis. A lost message is found again
    by the scheduler."""
    try:
        # By name: missions.tasks imports this module, so importing the task is a cycle.
        task_queue.enqueue_many(MAP_ITEM_TASK, [[str(mission_id), name, i] for i in indexes])
    except Exception:
        logger.warning(
            "could not enqueue %d items of %s/%s; the scheduler will",
            len(indexes),
            mission_id,
            name,
            exc_info=True,
        )


def _settle(item: MapItem, *, limit: int | None) -> None:
    """After `item` gave its slot up: under the mission's row lock (taken here, after the
    item's row), pass the slot on, or wake the mission when the map has settled. `limit`:
    the map's max_parallel (None: read from its Step). Recounts the map's items: maps whose
    items have no slot to pass on call it only once they found the map settled."""
    state = (
        Mission.objects.select_for_update()
        .filter(id=item.mission_id)
        .values_list("status", "waiting_on", "current_step")
        .first()
    )
    if state is None:
        return
    status, waiting_on, current_step = state
    waiting_here = (status, waiting_on, current_step) == (
        Mission.Status.WAITING,
        Mission.WaitingOn.MAP,
        item.step_name,
    )
    progress = _progress(item.mission_id, item.step_name)
    if not progress.settled:
        if status in MOVING and progress.waiting and not progress.failed:
            limit = limit or _max_parallel(item) or progress.total
            indexes = _fill_slots(item.mission_id, item.step_name, progress, limit=limit)
            _send_on_commit(item.mission_id, item.step_name, indexes)
        if waiting_here and progress.completed % max(1, progress.total // 50) == 0:
            # The detail moves in steps of 2% at most: one write per item would be a write
            # on the mission's row per item, under its lock.
            Mission.objects.filter(id=item.mission_id).update(
                waiting_detail=progress.label(item.step_name)
            )
        return
    if waiting_here and mission_wake(mission_id=item.mission_id):
        # A line on the rail per wake: it is how an operator (and a test) sees it once.
        verb = "failed" if progress.failed else "done"
        observation_record(
            mission=Mission.objects.get(id=item.mission_id),
            step_name=item.step_name,
            kind="resumed",
            message=(
                f"Parallel steps '{item.step_name}' {verb}: "
                f"{progress.completed} of {progress.total} completed"
            ),
            data={"completed": progress.completed, "failed": progress.failed},
        )


def _map_items(item: MapItem) -> QuerySet[MapItem]:
    return MapItem.objects.filter(mission_id=item.mission_id, step_name=item.step_name)


def _map_state(item: MapItem) -> tuple | None:
    """(status, waiting_on, current_step, holding, unsent, failed) of the item's mission."""
    if postgres_fast_paths.on_postgresql():  # prepared: composed and planned once
        params = {"mission": item.mission_id, "step": item.step_name}
        with postgres_fast_paths.execute_prepared(MAP_STATE, params) as cursor:
            return cursor.fetchone()
    items = _map_items(item)
    states = (
        Mission.objects.filter(id=item.mission_id)
        .annotate(
            holding=Exists(items.filter(status__in=UNFINISHED, enqueued_at__isnull=False)),
            unsent=Exists(items.filter(status=ItemStatus.PENDING, enqueued_at__isnull=True)),
            failed=Exists(items.filter(status=ItemStatus.FAILED)),
        )
        .values_list("status", "waiting_on", "current_step", "holding", "unsent", "failed")
    )
    return next(iter(states), None)  # one row by its key: no ORDER BY, as first() adds


def _wake_if_settled(item: MapItem, *, total: int) -> None:
    """After an item of a map without slots to pass on committed (see the module's
    docstring): one read, whether the map has settled while its mission waits on it; if so,
    the wake under the mission's lock. Otherwise, every 2% of the items, the progress line."""
    state = _map_state(item)
    if state is None:
        return
    status, waiting_on, current_step, holding, unsent, failed = state
    waiting_here = (status, waiting_on, current_step) == (
        Mission.Status.WAITING,
        Mission.WaitingOn.MAP,
        item.step_name,
    )
    settled = not holding and (failed or not unsent)
    if (waiting_here and settled) or status == Mission.Status.RUNNING:
        # Running: a pass of the mission may be about to commit its wait on this map without
        # having seen this item; the lock waits for that commit, and `_settle` looks again.
        with transaction.atomic():
            _settle(item, limit=total)
    elif waiting_here and (item.index + 1) % max(1, total // 50) == 0:
        # Items of a wide map finish side by side: the line moves in steps of 2% at most,
        # rather than a write on the mission's row per item.
        _write_progress(item, total=total)


def _write_progress(item: MapItem, *, total: int) -> None:
    """The mission's waiting line: "parallel steps 'name': 120 of 200 done"."""
    before, after = f"parallel steps '{item.step_name}': ", f" of {total} done"
    if postgres_fast_paths.on_postgresql():  # prepared: composed and planned once
        params = {"before": before, "after": after, "mission": item.mission_id}
        postgres_fast_paths.execute_prepared(PROGRESS, {**params, "step": item.step_name}).close()
        return
    completed = (
        _map_items(item)
        .filter(status=ItemStatus.COMPLETED)
        .order_by()
        .values("mission_id")
        .annotate(count=Count("id"))
        .values("count")
    )
    label = Concat(Value(before), Cast(Subquery(completed), CharField()), Value(after))
    Mission.objects.filter(
        id=item.mission_id,
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.MAP,
        current_step=item.step_name,
    ).update(waiting_detail=label)


def _max_parallel(item: MapItem) -> int | None:
    wait = (
        Step.objects.filter(mission_id=item.mission_id, name=item.step_name)
        .values_list("wait", flat=True)
        .first()
    )
    return (wait or {}).get("max_parallel")


# --- the worker's side: one item -----------------------------------------------------------


class StaleItem(Exception):
    """Another worker took the item over; this one must not commit."""


def map_item_run(*, mission_id, step_name: str, index: int, worker: str | None = None) -> str:
    """Run one item of a map, if it is still to run and nobody holds its lease."""
    worker = worker or worker_identity()
    item = _take(mission_id, step_name, index, worker)
    if item is None:
        return "skipped"
    with ItemHeartbeat(item.id, item.fencing_token):
        try:
            call = _capture(item)
        except NonRetryableError as exc:
            return _record_failure(item, exc, policy=DEFAULT_RETRY, final=True)
        if item.attempts > call.retry.max_attempts:
            # Every attempt so far ended with its worker: stop instead of killing more.
            lost = NonRetryableError(f"interrupted {item.attempts - 1} times (its worker stopped)")
            return _record_failure(item, lost, policy=call.retry, final=True)
        try:
            return _run(item, call)
        except StaleItem:
            logger.warning("item %s: lease lost, nothing committed", item)
            return "stale"
        except Exception as exc:
            return _record_failure(item, exc, policy=call.retry, final=False)


TAKE = f"""
UPDATE {MapItem._meta.db_table} AS item
   SET status = 'running', lease_owner = %(worker)s, lease_expires_at = %(expires)s,
       fencing_token = fencing_token + 1, attempts = attempts + 1, started_at = %(now)s,
       wake_at = NULL
 WHERE mission_id = %(mission)s AND step_name = %(step)s AND index = %(index)s
   AND status IN ('pending', 'running') AND enqueued_at IS NOT NULL
   AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)
   AND EXISTS (SELECT 1 FROM {Mission._meta.db_table} WHERE id = %(mission)s
                  AND status IN ('pending', 'running', 'waiting'))
   AND NOT EXISTS (SELECT 1 FROM {MapItem._meta.db_table} WHERE mission_id = %(mission)s
                  AND step_name = %(step)s AND status = 'failed')
RETURNING {", ".join(f"item.{field.column}" for field in MapItem._meta.concrete_fields)},
          set_config('synchronous_commit', 'off', true)
"""


# _record_completed on PostgreSQL: the item's result, fenced by its token.
RECORD = f"""
UPDATE {MapItem._meta.db_table}
   SET status = 'completed', result = %(result)s::jsonb, error = '', finished_at = %(now)s,
       lease_owner = '', lease_expires_at = NULL, enqueued_at = NULL
 WHERE id = %(item)s AND fencing_token = %(token)s AND status = 'running'
"""

# _wake_if_settled on PostgreSQL: the mission's state and whether its map has settled.
MAP_STATE = f"""
SELECT mission.status, mission.waiting_on, mission.current_step,
       EXISTS (SELECT 1 FROM {MapItem._meta.db_table} WHERE mission_id = mission.id
                  AND step_name = %(step)s AND status IN ('pending', 'running', 'retrying')
                  AND enqueued_at IS NOT NULL),
       EXISTS (SELECT 1 FROM {MapItem._meta.db_table} WHERE mission_id = mission.id
                  AND step_name = %(step)s AND status = 'pending' AND enqueued_at IS NULL),
       EXISTS (SELECT 1 FROM {MapItem._meta.db_table} WHERE mission_id = mission.id
                  AND step_name = %(step)s AND status = 'failed')
  FROM {Mission._meta.db_table} AS mission
 WHERE mission.id = %(mission)s
"""

# The progress line: the completed items counted in the UPDATE itself.
PROGRESS = f"""
UPDATE {Mission._meta.db_table}
   SET waiting_detail = %(before)s || (SELECT count(*) FROM {MapItem._meta.db_table}
                                        WHERE mission_id = %(mission)s AND step_name = %(step)s
                                          AND status = 'completed') || %(after)s
 WHERE id = %(mission)s AND status = 'waiting' AND waiting_on = 'map'
   AND current_step = %(step)s
"""


def _item_rows(mission_id, step_name: str, index: int) -> QuerySet[MapItem]:
    # Composed only where it is used: on PostgreSQL, building this query on every item cost a
    # fifth of the item's CPU and was needed only when the item could not be taken.
    return MapItem.objects.filter(mission_id=mission_id, step_name=step_name, index=index)


def _take(mission_id, step_name: str, index: int, worker: str) -> MapItem | None:
    """Take the item's lease (a new fencing token), in one UPDATE, if it holds a slot, nobody
    holds a live lease, its mission is moving and no sibling failed; else give its slot up."""
    now = timezone.now()
    if connection.vendor == "postgresql":  # the row comes back with the UPDATE
        taken_item = _take_on_postgresql(mission_id, step_name, index, worker=worker, now=now)
        if taken_item is None:
            _give_up_slot(
                _item_rows(mission_id, step_name, index), mission_id=mission_id, step_name=step_name
            )
        return taken_item
    item = _item_rows(mission_id, step_name, index)
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    taken = (
        item.filter(status__in=(ItemStatus.PENDING, ItemStatus.RUNNING), enqueued_at__isnull=False)
        .filter(free, Exists(_moving(mission_id)), ~Exists(_failed(mission_id, step_name)))
        .update(
            status=ItemStatus.RUNNING,
            lease_owner=worker,
            lease_expires_at=lease_expiry(now),
            fencing_token=F("fencing_token") + 1,
            attempts=F("attempts") + 1,
            started_at=now,
            wake_at=None,
        )
    )
    if taken:
        return item.get()
    _give_up_slot(item, mission_id=mission_id, step_name=step_name)
    return None


def _take_on_postgresql(
    mission_id, step_name: str, index: int, *, worker: str, now
) -> MapItem | None:
    """TAKE as a prepared statement that commits without waiting for its WAL flush, as a
    mission's lease does (missions.postgres_fast_paths): the item's checkpoint is a flushed
    commit through the same connection (`_taken_through_this_connection`), which flushes the
    take first; a PostgreSQL crash that forgets a take also ends that connection."""
    params = {
        "worker": worker,
        "expires": lease_expiry(now),
        "now": now,
        "mission": mission_id,
        "step": step_name,
        "index": index,
    }
    try:
        row = _execute_take(params)
    except (OperationalError, InterfaceError, *_driver_connection_errors()):
        if connection.in_atomic_block:
            raise
        # A connection PostgreSQL dropped while it was idle (a restart): once more on a new
        # one. Had the first attempt taken the item after all, this one finds it held.
        logger.info(
            "item %s of %s/%s: database connection lost, reconnecting", index, mission_id, step_name
        )
        connection.close()
        row = _execute_take(params)
    # The statement proved the connection works: no health check (a SELECT 1) before the
    # item's next statement, as for a mission's lease (studiox.celery).
    connection.health_check_done = True
    if row is None:
        return None
    taken = postgres_fast_paths._instance(MapItem, row)
    taken._take_connection = connection.connection
    return taken


def _execute_take(params: dict) -> tuple | None:
    with postgres_fast_paths.execute_prepared(TAKE, params) as cursor:
        return cursor.fetchone()


def _driver_connection_errors() -> tuple[type[Exception], ...]:
    # The TAKE talks to psycopg directly, so its errors arrive unwrapped by Django.
    return (connection.Database.OperationalError, connection.Database.InterfaceError)


def _taken_through_this_connection(item: MapItem) -> bool:
    taken_through = getattr(item, "_take_connection", None)
    return taken_through is None or taken_through is connection.connection


def _moving(mission_id):
    return Mission.objects.filter(id=mission_id, status__in=MOVING)


def _failed(mission_id, step_name: str):
    return MapItem.objects.filter(
        mission_id=mission_id, step_name=step_name, status=ItemStatus.FAILED
    )


def _give_up_slot(item, *, mission_id, step_name: str) -> None:
    """A pending item that must not run (its mission is not moving, or a sibling failed)
    goes back to pending without a slot; a retry of the mission gives it one again."""
    with transaction.atomic():
        released = (
            item.filter(
                status=ItemStatus.PENDING,
                enqueued_at__isnull=False,
                lease_expires_at__isnull=True,
            )
            .filter(~Exists(_moving(mission_id)) | Exists(_failed(mission_id, step_name)))
            .update(enqueued_at=None)
        )
        if released:
            _settle(item.get(), limit=None)


_captured: dict[tuple[str, str], tuple[MissionContext, _MapCall]] = {}
_CAPTURE_LIMIT = 200


@dataclass
class _Call:
    ctx: MissionContext
    fn: Callable[[Any], Any]
    items: list
    retry: RetryPolicy
    max_parallel: int | None


def _capture(item: MapItem) -> _Call:
    """The map's `fn` and items, from a replay of the mission that executes nothing and stops
    at the map's call. Kept per process: the steps before a waiting map never change."""
    key = (str(item.mission_id), item.step_name)
    if key not in _captured:
        if len(_captured) >= _CAPTURE_LIMIT:
            _captured.clear()
        _captured[key] = _replay_to_map(item)
    ctx, call = _captured[key]
    if item.index >= len(call.items):
        raise NonRetryableError(f"the code now gives '{item.step_name}' {len(call.items)} items")
    return _Call(ctx, call.fn, call.items, call.retry, call.max_parallel)


def _replay_to_map(item: MapItem) -> tuple[MissionContext, _MapCall]:
    mission = Mission.objects.get(id=item.mission_id)
    definition = get_definition(mission.type, mission.version)
    if definition is None:
        raise NonRetryableError(
            f"mission type '{mission.type}' version {mission.version} is not registered "
            "in this worker"
        )
    steps = list(Step.objects.filter(mission=mission).order_by("position"))
    ctx = MissionContext(mission, definition, steps, deadline=0)
    ctx.dry_run = True
    ctx.capture_map = item.step_name
    try:
        definition.fn(ctx, definition.parse_input(mission.input))
    except _MapCall as call:
        return ctx, call
    except IncompatibleCodeChange as exc:
        raise NonRetryableError(str(exc)) from exc
    except (_Yield, Exception):
        pass
    raise NonRetryableError(
        f"the mission code no longer reaches parallel steps '{item.step_name}' on replay"
    )


def _run(item: MapItem, call: _Call) -> str:
    """`fn(item)` and the item's checkpoint in one transaction, fenced by the item's token."""
    call.ctx._current_step_name = item.name
    total = len(call.items)
    slots_to_pass_on = call.max_parallel is not None and call.max_parallel < total
    try:
        with transaction.atomic():
            result = _checked_size(item.name, to_json(_call_fn(call, item)))
            # An item that sent the database nothing (a call to another system) has nothing
            # to commit with its result: one statement records it, without BEGIN and COMMIT.
            alone = not slots_to_pass_on and _transaction_not_begun()
            if not alone:
                _record_completed(item, result)
                if slots_to_pass_on:
                    _settle(item, limit=call.max_parallel)
        if alone:
            _record_completed(item, result)
    finally:
        call.ctx._current_step_name = None
    if not slots_to_pass_on:
        _wake_if_settled(item, total=total)
    return "completed"


def _transaction_not_begun() -> bool:
    """Inside an outermost atomic block on PostgreSQL: whether no statement was sent since it
    began (psycopg begins the transaction with the first statement)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return False
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


def _record_completed(item: MapItem, result: Any) -> None:
    recorded = _taken_through_this_connection(item) and _update_completed(item, result)
    if not recorded:
        raise StaleItem(str(item))


def _update_completed(item: MapItem, result: Any) -> int:
    if postgres_fast_paths.on_postgresql():  # prepared: composed and planned once
        params = {
            "result": json.dumps(result),
            "now": timezone.now(),
            "item": item.id,
            "token": item.fencing_token,
        }
        with postgres_fast_paths.execute_prepared(RECORD, params) as cursor:
            return cursor.rowcount
    return _fenced(item).update(
        status=ItemStatus.COMPLETED,
        result=result,
        error="",
        finished_at=timezone.now(),
        lease_owner="",
        lease_expires_at=None,
        enqueued_at=None,
    )


def _call_fn(call: _Call, item: MapItem) -> Any:
    try:
        return call.fn(call.items[item.index])
    except _Yield as stop:  # a ctx step or wait inside fn: the dry-run context refused it
        raise NonRetryableError(
            f"'{item.step_name}' called a ctx step or wait from inside an item; "
            "items may only read ctx.idempotency_key"
        ) from stop


def _fenced(item: MapItem):
    return MapItem.objects.filter(
        id=item.id, fencing_token=item.fencing_token, status=ItemStatus.RUNNING
    )


def _record_failure(item: MapItem, exc: Exception, *, policy: RetryPolicy, final: bool) -> str:
    """After `fn` raised (its writes rolled back): back off and retry within the policy, else
    fail the item; a failed item fails the map once the running items settle."""
    error = str(exc) if not policy.is_retryable(exc) or final else f"{type(exc).__name__}: {exc}"
    retry = not final and policy.is_retryable(exc) and item.attempts < policy.max_attempts
    now = timezone.now()
    with transaction.atomic():
        if not _taken_through_this_connection(item):
            return "stale"
        fenced = _fenced(item)
        if retry:
            # Backing off keeps the slot; the scheduler sends the item again when it is due.
            written = fenced.update(
                status=ItemStatus.RETRYING,
                error=error,
                wake_at=now + policy.delay(item.attempts),
                lease_owner="",
                lease_expires_at=None,
            )
        else:
            written = fenced.update(
                status=ItemStatus.FAILED,
                error=error,
                finished_at=now,
                lease_owner="",
                lease_expires_at=None,
                enqueued_at=None,
            )
        if not written:
            return "stale"
        if retry:
            return "retrying"
        observation_record(
            mission=Mission.objects.get(id=item.mission_id),
            step_name=item.step_name,
            kind="failed",
            message=f"Item {item.index} of '{item.step_name}' failed: {error}"[:500],
            data={"index": item.index, "attempts": item.attempts},
        )
        _settle(item, limit=None)
    return "failed"


class ItemHeartbeat(Heartbeat):
    """Renews the leases of map items running in this process."""

    @classmethod
    def renew(cls, running: list[tuple[int, int]], *, expires) -> None:
        for item_id, token in running:
            MapItem.objects.filter(
                id=item_id, fencing_token=token, status=ItemStatus.RUNNING
            ).update(lease_expires_at=expires)


# --- the scheduler, operators and the pre-deploy check -------------------------------------


RECOVER_BATCH = 500  # items (and missions) one scheduler pass handles at most


def map_items_recover() -> int:
    """One scheduler pass over items (missions_tick): send again items whose back-off is due,
    whose worker died or whose message was lost; wake a mission whose map settled without
    waking it. Only items of missions that may move."""
    ids = [*_due_retries(), *_lost_items()]
    if ids:
        resend = MapItem.objects.filter(id__in=ids)
        for mission_id, name, index in resend.values_list("mission_id", "step_name", "index"):
            enqueue_items(mission_id, name, [index])
    return len(ids) + _wake_settled_maps()


def _of_moving_missions() -> QuerySet[MapItem]:
    return MapItem.objects.filter(
        Exists(Mission.objects.filter(id=OuterRef("mission_id"), status__in=MOVING))
    )


# The scheduler's queries, composed once (studiox.compiled_query): they run every second.
_DUE_RETRIES = CompiledQuery(
    lambda now: (
        _of_moving_missions()
        .filter(status=ItemStatus.RETRYING, wake_at__lte=now, enqueued_at__isnull=False)
        .values_list("id", flat=True)[:RECOVER_BATCH]
    )
)
# A running item whose lease ran out lost its worker: sent again after a short grace. A pending
# item still not taken long after it was sent lost its message: items of a wide map may queue
# for a while behind each other, so only after a longer one.
_LOST_ITEMS = CompiledQuery(
    lambda now, dead_sent_before, unsent_sent_before: (
        _of_moving_missions()
        .filter(
            Q(status=ItemStatus.RUNNING, lease_expires_at__lt=now, enqueued_at__lt=dead_sent_before)
            | Q(
                status=ItemStatus.PENDING,
                lease_expires_at__isnull=True,
                enqueued_at__lt=unsent_sent_before,
            )
        )
        .values_list("id", flat=True)[:RECOVER_BATCH]
    )
)
# A mission waiting on a map none of whose items holds a slot (the settle check wakes it in the
# same transaction; this covers what a crash may have left).
_SETTLED_MAPS = CompiledQuery(
    lambda: (
        Mission.objects.filter(status=Mission.Status.WAITING, waiting_on=Mission.WaitingOn.MAP)
        .exclude(
            Exists(
                MapItem.objects.filter(
                    mission_id=OuterRef("id"),
                    step_name=OuterRef("current_step"),
                    status__in=UNFINISHED,
                    enqueued_at__isnull=False,
                )
            )
        )
        .values_list("id", flat=True)[:RECOVER_BATCH]
    )
)


def _due_retries() -> list[int]:
    now = timezone.now()
    ids = _DUE_RETRIES.values(now=now)
    if ids:
        MapItem.objects.filter(id__in=ids, status=ItemStatus.RETRYING).update(
            status=ItemStatus.PENDING, wake_at=None, enqueued_at=now
        )
    return ids


def _lost_items() -> list[int]:
    now = timezone.now()
    lease = settings.STUDIOX_LEASE_SECONDS
    ids = _LOST_ITEMS.values(
        now=now,
        dead_sent_before=now - timedelta(seconds=max(lease, 5)),
        unsent_sent_before=now - timedelta(seconds=max(lease * 3, 30)),
    )
    if ids:
        MapItem.objects.filter(id__in=ids).update(enqueued_at=now)
    return ids


def _wake_settled_maps() -> int:
    return sum(mission_wake(mission_id=mission_id) for mission_id in _SETTLED_MAPS.values())


def map_items_retry(*, mission: Mission) -> None:
    """For mission_retry: a failed map waits again; its failed items (and those that were not
    run because of them) go back to pending with a fresh budget; completed items stay."""
    failed_maps = Step.objects.filter(
        mission=mission, kind=Step.Kind.MAP, status=Step.Status.FAILED
    )
    names = list(failed_maps.values_list("name", flat=True))
    failed_maps.update(status=Step.Status.WAITING, error="", finished_at=None)
    MapItem.objects.filter(mission=mission, step_name__in=names).exclude(
        status=ItemStatus.COMPLETED
    ).update(
        status=ItemStatus.PENDING,
        attempts=0,
        error="",
        wake_at=None,
        finished_at=None,
        enqueued_at=None,
        lease_owner="",
        lease_expires_at=None,
    )
