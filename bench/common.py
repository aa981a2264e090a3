"""Shared set-up for the benchmarks: a scratch PostgreSQL database, migrated, and helpers.

Run from the project root with the venv, e.g. `.venv/bin/python -m bench.engine_overhead`.
DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/studiox_bench and
STUDIOX_BROKER_URL to redis://127.0.0.1:6379/13 (the SPEC measures on PostgreSQL + Redis)."""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/studiox_bench")
os.environ.setdefault("STUDIOX_BROKER_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("STUDIOX_CHANNEL_LAYER_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("STUDIOX_SECRET_KEY", "bench-only")
os.environ.setdefault("STUDIOX_VAR_DIR", "/tmp/studiox-bench")
os.environ.setdefault("STUDIOX_MISSION_MODULES", "bench.missions")
os.environ.setdefault("STUDIOX_LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studiox.settings")


def setup_django() -> None:
    import django
    import psycopg
    from django.conf import settings

    django.setup()
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        admin = psycopg.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"] or "postgres",
            dbname="postgres",
            autocommit=True,
        )
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{db["NAME"]}"')
        admin.close()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile_ms(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000


def commit_baseline(rounds: int = 500) -> list[float]:
    """One PostgreSQL commit of a small row, through the same Django connection."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, v text)")
    samples = []
    for i in range(rounds):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_commit (v) VALUES (%s)", [f"row {i}"])
        samples.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_commit")
    return samples


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
