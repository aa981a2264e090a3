"""What a concurrency limit costs, on PostgreSQL + Redis with real workers.

1. Throughput: BENCH_MISSIONS missions of BENCH_STEPS no-op steps, started at once: with no
   limit; with a generous one (concurrency=1000: nothing queues, only the bookkeeping shows,
   the limit row locked at every start and every end); and with concurrency=50 (far above
   the two worker processes, but as a slot is held from the start, all but 50 queue and are
   admitted one by one as others end). Missions per second from the first start to the last
   end, read from the rows; each against the unlimited run.
2. Hand-off: BENCH_HANDOFFS missions of a type limited to one at a time, started at once, so
   each one's end admits the next. Each sample ends when the next mission's first step starts
   (`started_at` of its step row) and begins at the freeing mission's final write (its
   `finished_at`, stamped as its last checkpoint begins), or at the admission (the "Got a
   slot" rail line, written in that checkpoint's transaction just before it commits). All are
   stamped by workers on the same host clock. Beside it, as a baseline taken on the same stack
   at the same moment, bench.wake_latency's path: an event delivered -> the step after the
   wait started.

The stack is bench.production's (`celery worker --concurrency 2` + beat) on a database and
Redis databases of its own. Run from the project root: `.venv/bin/python -m
bench.concurrency_cost`. Sizes (environment): BENCH_MISSIONS (200), BENCH_STEPS (5),
BENCH_ROUNDS (3 of each throughput run, interleaved; the medians are compared),
BENCH_HANDOFFS (100).
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import production
from bench.common import median_ms, percentile_ms

MISSIONS = int(os.environ.get("BENCH_MISSIONS", 200))
STEPS = int(os.environ.get("BENCH_STEPS", 5))
HANDOFFS = int(os.environ.get("BENCH_HANDOFFS", 100))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
production.DATABASE = "studiox_benchconcurrency"
production.BROKER_DB, production.CHANNEL_LAYER_DB = 2, 3


def wait_until_final(ids: list, stack: production.Stack, seconds: float = 600) -> None:
    from missions.models import Mission

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if Mission.objects.filter(id__in=ids, status="succeeded").count() == len(ids):
            return
        if Mission.objects.filter(id__in=ids, status__in=("failed", "cancelled")).exists():
            raise RuntimeError(f"a mission did not succeed:\n{stack.logs()}")
        stack.check_alive()
        time.sleep(0.05)
    raise RuntimeError(f"gave up waiting for {len(ids)} missions:\n{stack.logs()}")


def missions_per_second(mission_type: str, stack: production.Stack) -> float:
    from django.db.models import Max, Min

    from missions.models import Mission
    from missions.services import mission_start

    ids = [
        mission_start(type=mission_type, input={"steps": STEPS}).mission.id for _ in range(MISSIONS)
    ]
    wait_until_final(ids, stack)
    span = Mission.objects.filter(id__in=ids).aggregate(
        first=Min("created_at"), last=Max("finished_at")
    )
    return MISSIONS / (span["last"] - span["first"]).total_seconds()


def handoff_samples(stack: production.Stack) -> tuple[list[float], list[float]]:
    """Per hand-off: from the freeing mission's final write, and from the admission (the
    "Got a slot" line, written in the transaction that frees the slot, just before its
    commit), to the admitted mission's first step."""
    from django.db.models import Min, Q

    from missions.models import Mission
    from missions.services import mission_start

    ids = [
        mission_start(type="bench_one_at_a_time", input={"steps": 1}).mission.id
        for _ in range(HANDOFFS)
    ]
    wait_until_final(ids, stack)
    rows = (
        Mission.objects.filter(id__in=ids)
        .annotate(
            first_step=Min("steps__started_at"),
            admitted=Min("observations__created_at", filter=Q(observations__kind="resumed")),
        )
        .order_by("first_step")
        .values_list("first_step", "finished_at", "admitted")
    )
    from_final, from_admission = [], []
    for (_, finished, _), (next_start, _, admitted) in itertools.pairwise(list(rows)):
        from_final.append((next_start - finished).total_seconds())
        if admitted is not None:
            from_admission.append((next_start - admitted).total_seconds())
    return from_final, from_admission


def event_wake_samples(stack: production.Stack) -> list[float]:
    """The baseline on the same stack and moment (bench.wake_latency's path): from an event's
    delivery committed to the step after the mission's wait started."""
    from missions.models import Event, Step
    from missions.services import event_deliver, mission_start

    keys = [f"wake-{i}" for i in range(HANDOFFS)]
    ids = [mission_start(type="bench_wait", input={"key": key}).mission.id for key in keys]
    samples = []
    for mission_id, key in zip(ids, keys, strict=True):
        while not Step.objects.filter(mission_id=mission_id, name="signal").exists():
            stack.check_alive()
            time.sleep(0.01)
        event_deliver(event="bench.go", key=key)
        received = Event.objects.get(key=key).received_at
        while (started := step_started(mission_id, "after")) is None:
            stack.check_alive()
            time.sleep(0.01)
        samples.append((started - received).total_seconds())
    return samples


def step_started(mission_id, name: str):
    from missions.models import Step

    steps = Step.objects.filter(mission_id=mission_id, name=name)
    return steps.values_list("started_at", flat=True).first()


def report(label: str, samples: list[float]) -> None:
    print(
        f"  {label}: median {median_ms(samples):.2f} ms, p95 {percentile_ms(samples, 95):.2f} "
        f"ms, p99 {percentile_ms(samples, 99):.2f} ms ({len(samples)} samples)"
    )


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="studiox-concurrency-"))
    env = production.studiox_environment(scratch / "var")
    env["STUDIOX_MISSION_MODULES"] = "bench.missions,bench.concurrency_missions"
    os.environ.update(env)  # this process starts missions and reads rows with the same settings
    stack = production.Stack(env, scratch)
    try:
        production.fresh_database_and_django(env)
        worker = ["celery", "-A", "studiox", "worker", "-Q", production.QUEUE]
        stack.spawn("worker", [*worker, "--concurrency", "2"])
        stack.spawn("beat", ["celery", "-A", "studiox", "beat"])
        missions_per_second("bench_unlimited", stack)  # warm-up: connections, imports, caches
        rates: dict[str, list[float]] = {
            "bench_unlimited": [],
            "bench_limited": [],
            "bench_queued": [],
        }
        for _ in range(ROUNDS):  # interleaved, so that a busy moment hits every variant alike
            for mission_type, samples in rates.items():
                samples.append(missions_per_second(mission_type, stack))
        unlimited, limited, queued = (statistics.median(samples) for samples in rates.values())
        print(
            f"{MISSIONS} missions x {STEPS} no-op steps, worker --concurrency 2, "
            f"median of {ROUNDS} interleaved rounds:"
        )
        print(f"  no limit:                      {unlimited:.1f} missions/s")
        print(
            f"  concurrency=1000 (none queue): {limited:.1f} missions/s, "
            f"{limited / unlimited:.2f} of no limit"
        )
        print(
            f"  concurrency=50 (most queue):   {queued:.1f} missions/s, "
            f"{queued / unlimited:.2f} of no limit"
        )
        from_final, from_admission = handoff_samples(stack)
        print("slot freed -> next queued mission's first step started (concurrency=1):")
        report("from the freeing mission's final write", from_final)
        report("from the admission, in the freeing transaction", from_admission)
        report("baseline, event delivered -> next step started", event_wake_samples(stack))
        print("target: median <= 10 ms")
    finally:
        stack.stop()
        production.flush_redis()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
