"""`ctx.map` of no-op items on two prefork workers against the same items as sequential steps.

Starts the production stack as `bench.production` does (its helpers: a scratch PostgreSQL
database `studiox_benchfanout`, recreated and migrated; uvicorn; `celery worker` with the
default prefork pool, `--concurrency 2`; `celery beat`; Redis broker and channel layer on
BENCH_FANOUT_REDIS_DBS, default "2,3"), then, in one run, alternately: one mission whose
BENCH_ITEMS (200) no-op items are one `ctx.map`, and one mission with as many sequential
`ctx.step`s. Each is timed from the mission's creation to its verdict (database times);
BENCH_RUNS (3) of each, medians reported, and the ratio sequential / parallel; for no-op
items and for items that wait 20 ms, as a call to another system does (BENCH_WORK_MS, "0,20").

Run from the project root: `.venv/bin/python -m bench.fan_out`.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import production
from bench.production import STARTED, Stack, interrupt_once, stop_process

ITEMS = production.env_int("BENCH_ITEMS", 200)
# Each item's wait in ms, as a call to another system would: 0 (no-op items) measures the
# engine's cost per item; a wait shows what running items side by side buys.
WORK_MS = [int(ms) for ms in os.environ.get("BENCH_WORK_MS", "0,20").split(",")]
RUNS = production.env_int("BENCH_RUNS", 3)
REDIS_DBS = os.environ.get("BENCH_FANOUT_REDIS_DBS", "2,3")


def configure(scratch: Path) -> dict[str, str]:
    """bench.production's settings, on this benchmark's own database and Redis DBs."""
    production.DATABASE = "studiox_benchfanout"
    broker, layer = (int(db) for db in REDIS_DBS.split(","))
    production.BROKER_DB, production.CHANNEL_LAYER_DB = broker, layer
    return production.studiox_environment(scratch / "var")


def timed_mission(stack: Stack, *, parallel: bool, work_ms: int = 0) -> float:
    """Seconds from the mission's creation to its verdict, as the database recorded them."""
    from missions.models import Mission
    from missions.services import mission_start

    data = {"items": ITEMS, "parallel": parallel, "work_ms": work_ms}
    mission = mission_start(type="bench_map", input=data).mission
    deadline = time.monotonic() + production.TIMEOUT
    while time.monotonic() < deadline:
        mission.refresh_from_db()
        if mission.is_final:
            if mission.status != Mission.Status.SUCCEEDED:
                raise RuntimeError(f"mission {mission.id} {mission.status}: {mission.error}")
            return (mission.finished_at - mission.created_at).total_seconds()
        stack.check_alive()
        time.sleep(0.05)
    raise RuntimeError(f"mission {mission.id} not finished after {production.TIMEOUT:.0f} s")


def measure(stack: Stack, work_ms: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"parallel": [], "sequential": []}
    for _ in range(RUNS):
        times["sequential"].append(timed_mission(stack, parallel=False, work_ms=work_ms))
        times["parallel"].append(timed_mission(stack, parallel=True, work_ms=work_ms))
    return times


def report(times: dict[str, list[float]], work_ms: int) -> None:
    sequential = statistics.median(times["sequential"])
    parallel = statistics.median(times["parallel"])
    what = "no-op items" if not work_ms else f"items of {work_ms} ms each"
    print(f"{ITEMS} {what}, 2 prefork workers, PostgreSQL + Redis, {RUNS} runs each")
    for label, key in (("sequential ctx.step", "sequential"), ("ctx.map", "parallel")):
        runs = ", ".join(f"{t:.2f}" for t in times[key])
        median = statistics.median(times[key])
        print(f"  {label:20} median {median:6.2f} s ({ITEMS / median:6.1f} items/s); runs {runs}")
    print(f"  ratio sequential / ctx.map: {sequential / parallel:.2f}x")


def main() -> None:
    interrupt_once()
    scratch = Path(tempfile.mkdtemp(prefix="studiox-fanout-"))  # logs and var, removed at the end
    env = configure(scratch)
    os.environ.update(env)  # this process starts missions and reads them with the same settings
    stack = Stack(env, scratch)
    try:
        production.fresh_database_and_django(env)
        stack.start()
        timed_mission(stack, parallel=True)  # warm-up: both worker processes connected
        for work_ms in WORK_MS:
            report(measure(stack, work_ms), work_ms)
        print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for process in reversed(STARTED):
            stop_process(process)
        production.flush_redis()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
