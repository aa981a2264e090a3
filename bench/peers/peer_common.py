"""What every peer script shares: its arguments, a scratch database and its one-line report.

Peer scripts run in the peers' virtualenv (bench/peers/setup.sh), never in StudioX's, so this
module imports nothing from the product.
"""

import argparse
import itertools
import json
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

RESULT_PREFIX = "BENCH_RESULT "


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database-url", required=True, help="scratch database, recreated")
    parser.add_argument("--broker-url", default="", help="Redis URL (bare chain only)")
    parser.add_argument("--missions", type=int, default=50, help="workflows started at once")
    parser.add_argument("--steps", type=int, default=40, help="steps per workflow")
    parser.add_argument("--gap-runs", type=int, default=3, help="lone workflows for the gap")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per measurement")
    signal.signal(signal.SIGTERM, _exit_cleanly)
    return parser.parse_args()


def _exit_cleanly(signum, frame) -> None:
    """SIGTERM from the driver runs the script's clean-up (workers, scratch database)."""
    raise SystemExit(128 + signum)


def versions(*packages: str) -> str:
    return ", ".join(f"{package} {version(package)}" for package in packages)


def recreate_database(url: str) -> None:
    """Drop and create the database the URL names: each run starts from nothing."""
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def gaps_ms(marks: Sequence[float]) -> list[float]:
    """Finish time of each step minus that of the step before, in milliseconds."""
    return [(later - earlier) * 1000 for earlier, later in itertools.pairwise(marks)]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def report(result: dict[str, Any]) -> None:
    """The driver reads the last line that starts with RESULT_PREFIX."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)
