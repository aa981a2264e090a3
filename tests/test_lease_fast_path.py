"""The lease on PostgreSQL (missions.postgres_fast_paths): it commits without waiting for its WAL
flush, so a checkpoint may commit only through the connection that took the lease; a connection
PostgreSQL dropped while idle is replaced once, since workers skip the health check."""

import datetime

import pytest
from django.db import connection, connections
from django.utils import timezone

from missions import engine
from missions.lease import lease_acquire
from missions.models import Mission, Step
from missions.runtime import _registry
from missions.services import mission_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connections["default"].vendor != "postgresql", reason="the fast paths are PostgreSQL's"
    ),
]


def start_counting(steps: int = 2) -> Mission:
    return mission_start(type="test_count", input={"steps": steps}).mission


def test_a_checkpoint_commits_only_through_the_connection_that_took_the_lease():
    mission = start_counting()
    leased = lease_acquire(mission.id, "worker-a")
    assert leased is not None
    # What a PostgreSQL crash leaves: the lease's connection is gone, a new one comes next.
    connection.close()
    ctx = engine.MissionContext(leased, _registry["test_count"][1], [], deadline=0)
    with pytest.raises(engine.StaleLease):
        ctx.step("n:0", lambda: 1)
    assert not Step.objects.filter(mission=mission).exists()
    assert Mission.objects.get(id=mission.id).step_count == 0


def test_the_lease_leaves_the_connection_committing_synchronously():
    mission = start_counting()
    assert lease_acquire(mission.id, "worker-a") is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    # The checkpoint after it is durable as before, and the whole mission still runs.
    assert engine.mission_advance(mission_id=mission.id) == engine.Outcome.SKIPPED
    Mission.objects.filter(id=mission.id).update(lease_owner="", lease_expires_at=None)
    while engine.mission_advance(mission_id=mission.id) != engine.Outcome.FINISHED:
        pass
    done = Mission.objects.get(id=mission.id)
    assert (done.status, done.step_count, done.verdict["total"]) == ("succeeded", 2, 2)


def test_a_lease_replaces_a_connection_postgresql_dropped_while_idle():
    mission = start_counting()
    connection.ensure_connection()
    dropped = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [dropped])
    finally:
        other.close()
    leased = lease_acquire(mission.id, "worker-a")
    assert leased is not None and leased.lease_owner == "worker-a"
    assert connection.connection.info.backend_pid != dropped


def test_a_step_s_statements_are_prepared_once_per_connection():
    """PostgreSQL plans the lease and the checkpoint once per connection, not on every step
    (Django's own cursors bind on the client, where nothing can be prepared)."""
    mission = start_counting(steps=3)
    while engine.mission_advance(mission_id=mission.id) != engine.Outcome.FINISHED:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any("WITH leased AS" in statement for statement in prepared), prepared
    assert any("WITH fenced AS" in statement for statement in prepared), prepared


def test_a_worker_that_missed_passes_reads_what_it_has_not_seen_with_its_lease():
    """The lease's statement also reads the steps after those this process saw completed:
    the pass that follows replays all of them, and none runs twice."""
    mission = start_counting(steps=4)
    engine.mission_advance(mission_id=mission.id)  # n:0, seen by this process
    seen = engine._step_cache[str(mission.id)]
    saw_only_the_first = engine._Cached(seen.fencing_token, list(seen.steps), seen.settled)
    engine.mission_advance(mission_id=mission.id)  # n:1 and n:2, as if by another worker
    engine.mission_advance(mission_id=mission.id)
    engine._step_cache[str(mission.id)] = saw_only_the_first

    while engine.mission_advance(mission_id=mission.id) != engine.Outcome.FINISHED:
        pass
    done = Mission.objects.get(id=mission.id)
    assert (done.status, done.step_count, done.verdict["total"]) == ("succeeded", 4, 4)
    recorded = list(Step.objects.filter(mission=mission).order_by("position"))
    assert [step.name for step in recorded] == ["n:0", "n:1", "n:2", "n:3"]
    replayed = engine._step_cache[str(mission.id)].steps
    assert [(step.pk, step.position) for step in replayed] == [
        (step.pk, step.position) for step in recorded
    ]


def test_a_start_is_one_prepared_insert_and_a_duplicate_is_djangos_integrity_error(requester):
    from django.db import IntegrityError

    from missions import postgres_fast_paths

    first = mission_start(
        type="test_count", input={"steps": 1}, started_by=requester, idempotency_key="once"
    ).mission
    stored = Mission.objects.get(id=first.id)
    assert (stored.type, stored.input["steps"], stored.started_by_id) == (
        "test_count",
        1,
        requester.id,
    )
    assert stored.input == first.input
    assert stored.created_at == first.created_at and not first._state.adding
    again = Mission(
        type="test_count", version=1, input={}, started_by=requester, idempotency_key="once"
    )
    with pytest.raises(IntegrityError):
        postgres_fast_paths.insert_mission(again)


def test_a_leased_mission_and_its_steps_are_what_the_orm_reads():
    """The lease's rows go through psycopg's own timestamp loader, not Django's: the same
    values, in the same UTC time zone object, as the ORM's reading of the same rows."""
    from missions import postgres_fast_paths

    mission = start_counting(steps=3)
    engine.mission_advance(mission_id=mission.id)
    engine.mission_advance(mission_id=mission.id)
    Mission.objects.filter(id=mission.id).update(lease_owner="", lease_expires_at=None)
    now = timezone.now()
    leased, steps = postgres_fast_paths.lease(
        mission_id=mission.id, worker="worker-a", now=now, expires=now, steps_from=0
    )
    stored = Mission.objects.get(id=mission.id)
    times = [
        field.attname
        for field in Mission._meta.concrete_fields
        if field.get_internal_type() == "DateTimeField"
    ]
    assert [getattr(leased, name) for name in times] == [getattr(stored, name) for name in times]
    assert leased.created_at.tzinfo is stored.created_at.tzinfo is datetime.UTC
    recorded = list(Step.objects.filter(mission=mission).order_by("position"))
    assert len(steps) == len(recorded) == 2
    for read, orm in zip(steps, recorded, strict=True):
        assert (read.started_at, read.finished_at, read.result) == (
            orm.started_at,
            orm.finished_at,
            orm.result,
        )
        assert read.finished_at.tzinfo is datetime.UTC


def test_the_checkpoint_finds_its_mission_by_key_however_many_are_running():
    """With no statistics (a new database), PostgreSQL took the checkpoint's fence through the
    status index, walking every running mission on every step."""
    from missions import postgres_fast_paths

    mission = start_counting()
    Mission.objects.bulk_create(
        [Mission(type="test_count", version=1, input={}, status="running") for _ in range(50)]
    )
    fence = postgres_fast_paths.FENCE + " SELECT id FROM fenced"
    values = {"now": timezone.now(), "name": "n:0", "keep": True, "mission": mission.id, "token": 0}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + fence, values)
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "missions_mission_pkey" in plan, plan


def test_a_verdict_that_ends_nothing_else_writes_what_the_orm_path_writes(monkeypatch):
    """A mission with no parent and no concurrency limit reaches its verdict in one prepared
    statement; the row and the rail lines are those the ORM path writes."""
    from observations.models import Observation

    def finished(mission: Mission) -> Mission:
        while engine.mission_advance(mission_id=mission.id) != engine.Outcome.FINISHED:
            pass
        return Mission.objects.get(id=mission.id)

    fast = finished(start_counting(steps=1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any("SET status = 'succeeded'" in statement for statement in prepared), prepared

    monkeypatch.setattr(engine.MissionContext, "_verdict_ends_nothing_else", lambda *a: False)
    orm = finished(start_counting(steps=1))

    columns = [
        "status",
        "verdict",
        "outcome",
        "summary",
        "current_step",
        "step_count",
        "waiting_on",
        "waiting_detail",
        "wake_at",
        "lease_owner",
        "lease_expires_at",
        "lost_leases",
        "error",
    ]
    assert [getattr(fast, name) for name in columns] == [getattr(orm, name) for name in columns]
    assert (fast.status, fast.outcome, fast.verdict["total"]) == ("succeeded", "counted", 1)
    assert fast.created_at <= fast.finished_at <= fast.updated_at
    assert fast.enqueued_at is not None

    def lines(mission: Mission) -> list[tuple]:
        rows = Observation.objects.filter(mission=mission).order_by("id")
        return list(rows.values_list("kind", "step_name", "message", "data"))

    assert lines(fast) == lines(orm)
    assert lines(fast)[-1][0] == "verdict"
