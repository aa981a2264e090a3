"""Hand-written SQL for PostgreSQL, where the engine's hottest statements run.

A completed step's checkpoint is ONE statement: the fencing UPDATE, the step INSERT (or
UPDATE of a step that was waiting or retrying) and the observation INSERTs are data-modifying
CTEs of one query, so a checkpoint costs BEGIN, one statement and COMMIT, the same round trips
as the smallest possible commit. Anything unusual (interrupted, stale, other databases) takes
the ORM path in engine._write, which this path never leaves half-done: if the fence matches
nothing, nothing is written.

The fence finds the mission by its key alone: its status is compared through an expression
that no index serves. Where PostgreSQL has no statistics yet (a new database, or autovacuum
off), it thinks few missions are running and would otherwise walk every running one in the
status index, on every checkpoint: a quarter of the checkpoint's CPU with 50 running.

Taking a lease (with the steps a worker has not seen yet) and reading an event delivered to a
wait are single statements here too; on other databases the engine and the lease module use
the ORM.

A lease commits without waiting for its WAL flush (`synchronous_commit` off for that statement
only): a flush per lease doubled the disk waits of a step. Nothing is lost by it: the lease only
guards the checkpoint that follows, and that checkpoint is a synchronous commit, which flushes
the lease's WAL before its own. What a PostgreSQL crash can forget is a lease taken in its last
moments, and the crash also ends every connection; so the engine writes a checkpoint only
through the connection that took its lease (`lease_connection_held`), and a worker whose
lease may be forgotten commits nothing.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from psycopg.types.datetime import TimestamptzLoader

from missions.models import Event, EventDelivery, Mission, Step
from observations.models import Observation
from observations.services import observation_clean, observation_publish_on_commit

FENCE = f"""
WITH fenced AS (
    UPDATE {Mission._meta.db_table}
       SET status = 'running', lost_leases = 0, updated_at = %(now)s,
           current_step = %(name)s, step_count = step_count + 1,
           waiting_on = '', waiting_detail = '', waiting_since = NULL, wake_at = NULL,
           waiting_event = '', waiting_event_key = '',
           lease_owner = CASE WHEN %(keep)s THEN lease_owner ELSE '' END,
           lease_expires_at = CASE WHEN %(keep)s THEN lease_expires_at ELSE NULL END,
           enqueued_at = CASE WHEN %(keep)s THEN enqueued_at ELSE %(now)s END
     WHERE id = %(mission)s AND fencing_token = %(token)s AND coalesce(status, '') = 'running'
 RETURNING id
)"""

NEW_STEP = f"""
, step AS (
    INSERT INTO {Step._meta.db_table}
           (mission_id, name, title, position, kind, status, attempts, result, error,
            idempotency_key, wait, started_at, finished_at)
    SELECT id, %(name)s, %(title)s, %(position)s, %(kind)s, 'completed', %(attempts)s,
           %(result)s::jsonb, '', %(key)s, '{{}}'::jsonb, %(started)s, %(now)s
      FROM fenced
 RETURNING id
)"""

# The row the replay loaded: a running mission's steps are never deleted, so a matched fence
# always finds it.
RECORDED_STEP = f"""
, step AS (
    UPDATE {Step._meta.db_table}
       SET status = 'completed', attempts = %(attempts)s, result = %(result)s::jsonb,
           error = '', finished_at = %(now)s, title = %(title)s
     WHERE id = %(step)s AND mission_id IN (SELECT id FROM fenced)
 RETURNING id
)"""

LINES = f"""
, lines AS (
    INSERT INTO {Observation._meta.db_table}
           (mission_id, step_name, kind, message, data, created_at)
    SELECT fenced.id, o.step, o.kind, o.message, o.data, %(now)s
      FROM fenced, jsonb_to_recordset(%(lines)s::jsonb)
           AS o(step text, kind text, message text, data jsonb)
 RETURNING id
)"""

STEP_AND_LINES = "SELECT (SELECT id FROM step), (SELECT array_agg(id ORDER BY id) FROM lines)"

SQL = {  # by `created`
    True: FENCE + NEW_STEP + LINES + STEP_AND_LINES,
    False: FENCE + RECORDED_STEP + LINES + STEP_AND_LINES,
}

# A mission's verdict, fenced like a step's checkpoint, with its lines: what engine._write_with_orm
# writes for it (final state, lease released) when nothing else ends with it.
VERDICT = f"""
WITH fenced AS (
    UPDATE {Mission._meta.db_table}
       SET status = 'succeeded', lost_leases = 0, updated_at = %(now)s,
           verdict = %(verdict)s::jsonb, outcome = %(outcome)s, summary = %(summary)s,
           finished_at = %(finished)s, waiting_on = '', waiting_detail = '', wake_at = NULL,
           lease_owner = '', lease_expires_at = NULL, enqueued_at = %(now)s
     WHERE id = %(mission)s AND fencing_token = %(token)s AND coalesce(status, '') = 'running'
 RETURNING id
){LINES}
SELECT (SELECT id FROM fenced), (SELECT array_agg(id ORDER BY id) FROM lines)
"""

# lease.lease_acquire in one statement, the mission row coming back with it. set_config(...,
# true) lasts until this statement's own commit: only the lease skips the flush (see above).
# The runnable statuses are part of the statement: adapting a list parameter on every step
# cost a tenth of the lease's CPU.
RUNNABLE = ", ".join(f"'{status}'" for status in Mission.RUNNABLE_STATUSES)
LEASE = f"""
UPDATE {Mission._meta.db_table}
   SET status = 'running', lease_owner = %(worker)s, lease_expires_at = %(expires)s,
       fencing_token = fencing_token + 1, updated_at = %(now)s,
       lost_leases = lost_leases + CASE WHEN lease_expires_at IS NULL THEN 0 ELSE 1 END
 WHERE id = %(mission)s AND status IN ({RUNNABLE})
   AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)
RETURNING {", ".join(field.column for field in Mission._meta.concrete_fields)},
          set_config('synchronous_commit', 'off', true)
"""

# The lease and, in the same statement, the mission's steps from a position on: those a worker
# has not seen yet (engine._load_steps), so that a pass costs one round trip before its step.
LEASE_AND_STEPS = f"""
WITH leased AS ({LEASE})
SELECT leased.*, {", ".join(f"step.{field.column}" for field in Step._meta.concrete_fields)}
  FROM leased
  LEFT JOIN {Step._meta.db_table} step
    ON step.mission_id = leased.id AND step.position >= %(position)s
 ORDER BY step.position
"""

DELIVERED = f"""
SELECT event.payload
  FROM {EventDelivery._meta.db_table} delivery
  JOIN {Event._meta.db_table} event ON event.id = delivery.event_id
 WHERE delivery.mission_id = %(mission)s AND delivery.step_name = %(step)s
"""


# services.mission_start's INSERT, every column of the row.
INSERT_MISSION = f"""
INSERT INTO {Mission._meta.db_table}
       ({", ".join(field.column for field in Mission._meta.local_concrete_fields)})
VALUES ({", ".join(f"%({field.attname})s" for field in Mission._meta.local_concrete_fields)})
"""


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def execute_prepared(sql: str, params: dict) -> psycopg.Cursor:
    """Run `sql` as a statement prepared once per connection: PostgreSQL plans it once, not on
    every step, and the parameters travel apart from the query. Django's own cursors bind
    parameters on the client, and psycopg cannot prepare on those (it ignores `prepare=True`)."""
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    # psycopg's compiled loader, not Django's (pure Python, a tenth of a lease's CPU): with the
    # connection's time zone UTC, as Django sets it, both give the same UTC datetimes.
    cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
    try:
        cursor.execute(sql, params, prepare=True)
    except BaseException:
        cursor.close()
        raise
    return cursor


def lease(
    *, mission_id, worker: str, now: datetime, expires: datetime, steps_from: int | None = None
) -> tuple[Mission | None, list[Step] | None]:
    """The mission, leased to `worker` (None if it is not runnable or someone holds it), and,
    if `steps_from` is given, its steps at that position and after, in order."""
    params = {"worker": worker, "expires": expires, "now": now, "mission": mission_id}
    if steps_from is not None:
        params["position"] = steps_from
    # A prepared statement and the fields' own converters (JSON, for one): raw() spent longer
    # composing the row than PostgreSQL spent taking the lease.
    with execute_prepared(LEASE if steps_from is None else LEASE_AND_STEPS, params) as cursor:
        rows = cursor.fetchall()
    if not rows:
        return None, None
    width = len(Mission._meta.concrete_fields)
    mission = _instance(Mission, rows[0][:width])
    mission._lease_connection = connection.connection
    if steps_from is None:
        return mission, None
    # After the mission's columns, set_config's, then the step's, its id first: a mission with
    # no step at or after the position comes back once, with NULL there.
    steps = [_instance(Step, row[width + 1 :]) for row in rows if row[width + 1] is not None]
    return mission, steps


def insert_mission(mission: Mission) -> None:
    """Save a new mission with one prepared statement: composing the INSERT was a sixth of a
    start's CPU in the web process. Fields are prepared as the ORM's save prepares them, and
    database errors arrive as Django's (a duplicate idempotency key: IntegrityError)."""
    fields = Mission._meta.local_concrete_fields
    params = {f.attname: f.get_db_prep_save(f.pre_save(mission, True), connection) for f in fields}
    with connection.wrap_database_errors, execute_prepared(INSERT_MISSION, params):
        pass
    mission._state.adding = False
    mission._state.db = connection.alias


def _instance(model, row: tuple):
    """A model instance from a row of its concrete columns, through the fields' converters."""
    attnames, converted = _columns(model)
    values = list(row)
    for index, converters in converted:
        for converter in converters:
            values[index] = converter(values[index], None, connection)
    return model.from_db(connection.alias, attnames, values)


@functools.cache
def _columns(model) -> tuple[list[str], list[tuple[int, list]]]:
    """The concrete fields' names, and the converters of those that have any (JSON fields):
    asked of the fields once, not for every field of every row."""
    fields = model._meta.concrete_fields
    converted = [(i, f.get_db_converters(connection)) for i, f in enumerate(fields)]
    return [field.attname for field in fields], [pair for pair in converted if pair[1]]


def lease_connection_held(mission: Mission) -> bool:
    """Whether a checkpoint of this pass may commit through the current connection: only the
    one that took the lease (a new connection may follow a crash that forgot the lease)."""
    taken_through = getattr(mission, "_lease_connection", None)
    return taken_through is None or taken_through is connection.connection


def delivered_payload(*, mission_id, step_name: str) -> tuple[bool, Any]:
    """Whether an event was delivered to this wait, and its payload: one prepared statement
    (the ORM spends four times as long composing the same query, on every wake-up)."""
    with execute_prepared(DELIVERED, {"mission": mission_id, "step": step_name}) as cursor:
        row = cursor.fetchone()
    if row is None:
        return False, None
    # Django has psycopg hand jsonb over as text, for JSONField to decode; so do we.
    return True, None if row[0] is None else json.loads(row[0])


def applicable(step: Step | None, created: bool, status_to: str) -> bool:
    return (
        on_postgresql()
        and step is not None
        and (created or step.pk is not None)
        and step.status == Step.Status.COMPLETED
        and status_to == Mission.Status.RUNNING
    )


def complete_step(
    *,
    mission: Mission,
    token: int,
    step: Step,
    created: bool,
    lines: list[dict],
    keep_lease: bool,
    now: datetime,
) -> bool:
    """Write the checkpoint; False if the fence matched nothing (then nothing was written)."""
    cleaned = _cleaned(lines)
    params = {
        "now": now,
        "name": step.name,
        "title": step.title,
        "keep": keep_lease,
        "mission": mission.id,
        "token": token,
        "position": step.position,
        "kind": step.kind,
        "attempts": step.attempts,
        "result": json.dumps(step.result),
        "key": step.idempotency_key,
        "started": step.started_at,
        "step": step.pk,
        "lines": json.dumps(cleaned),
    }
    with execute_prepared(SQL[created], params) as cursor:
        step_id, line_ids = cursor.fetchone()
    if step_id is None:
        return False
    step.id = step.pk = step_id
    step.finished_at = now
    step._state.adding = False
    _publish(mission, line_ids, cleaned, now=now)
    return True


def write_verdict(
    *, mission: Mission, token: int, updates: dict, lines: list[dict], now: datetime
) -> bool:
    """The mission succeeded with `updates` (verdict, outcome, summary, finished_at) and
    `lines`; False if the fence matched nothing (then nothing was written)."""
    cleaned = _cleaned(lines)
    params = {
        "now": now,
        "mission": mission.id,
        "token": token,
        "verdict": json.dumps(updates["verdict"]),
        "outcome": updates["outcome"],
        "summary": updates["summary"],
        "finished": updates["finished_at"],
        "lines": json.dumps(cleaned),
    }
    with execute_prepared(VERDICT, params) as cursor:
        fenced, line_ids = cursor.fetchone()
    if fenced is None:
        return False
    _publish(mission, line_ids, cleaned, now=now)
    return True


def _cleaned(lines: list[dict]) -> list[dict]:
    """Rail lines as the observations app writes them (redacted, within its limits)."""
    cleaned = []
    for line in lines:
        message, data = observation_clean(message=line["message"], data=line["data"])
        cleaned.append(
            {"step": line.get("step", ""), "kind": line["kind"], "message": message, "data": data}
        )
    return cleaned


def _publish(mission: Mission, line_ids: list[int] | None, cleaned: list[dict], *, now) -> None:
    created_at = now.isoformat()
    observation_publish_on_commit(
        [
            {"seq": line_id, "mission_id": str(mission.id), **line, "created_at": created_at}
            for line_id, line in zip(line_ids or [], cleaned, strict=False)
        ]
    )
