"""A step changes only columns that no index of the missions table covers, so PostgreSQL
updates the mission row in place (a HOT update: no index writes) on every lease and
checkpoint, and leaves room on each page for it."""

import pytest
from django.db import connection

from missions.models import Mission

pytestmark = pytest.mark.django_db

# What a lease and a plain step's checkpoint change (missions.postgres_fast_paths); the status
# and the waiting columns they also write keep their values while a mission runs step by step.
CHANGED_BY_EVERY_STEP = {
    "lease_owner",
    "lease_expires_at",
    "fencing_token",
    "lost_leases",
    "updated_at",
    "current_step",
    "step_count",
    "enqueued_at",
}


def test_no_index_covers_a_column_every_step_changes():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Mission._meta.db_table)
    covering = {
        name: sorted(CHANGED_BY_EVERY_STEP.intersection(info["columns"]))
        for name, info in constraints.items()
        if info["index"] or info["unique"]
    }
    assert {name: columns for name, columns in covering.items() if columns} == {}


def test_missions_pages_keep_room_for_a_rows_next_version():
    if connection.vendor != "postgresql":
        pytest.skip("fillfactor is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [Mission._meta.db_table]
        )
        (options,) = cursor.fetchone()
    assert "fillfactor=70" in (options or [])
