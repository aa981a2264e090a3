"""Where one default-mode pass spends its time, phase by phase, in-process on PostgreSQL.

Twenty missions of 40 no-op steps are advanced one pass at a time, as a worker would, with the
real enqueue of the next task (sent to a queue nobody reads, deleted at the end); the lease (one
statement that also reads the steps this process has not seen), the checkpoint and the enqueue
are each timed. One PostgreSQL commit is the
baseline, taken in the same run.
"""

import collections
import os
import statistics
import time
from collections.abc import Callable
from unittest import mock

from bench.common import commit_baseline, median_ms, setup_django

MISSIONS, STEPS = 20, 40
UNREAD_QUEUE = "bench_step_phases"


def main() -> None:
    setup_django()
    import redis
    from django.conf import settings

    from missions import engine, postgres_fast_paths
    from missions.services import mission_start

    settings.CELERY_TASK_DEFAULT_QUEUE = UNREAD_QUEUE  # the real enqueue, to a queue nobody reads

    samples: dict[str, list[float]] = collections.defaultdict(list)

    def timed(phase: str, fn: Callable) -> Callable:
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                samples[phase].append(time.perf_counter() - started)

        return run

    phases = [
        mock.patch.object(postgres_fast_paths, "lease", timed("lease", postgres_fast_paths.lease)),
        mock.patch.object(
            postgres_fast_paths,
            "complete_step",
            timed("checkpoint", postgres_fast_paths.complete_step),
        ),
        mock.patch.object(engine, "enqueue_advance", timed("enqueue", engine.enqueue_advance)),
    ]
    for phase in phases:
        phase.start()
    try:
        for round_ in ("warm-up", "measured"):
            samples.clear()
            count = 3 if round_ == "warm-up" else MISSIONS
            for _ in range(count):
                mission = mission_start(type="bench_noop", input={"steps": STEPS}).mission
                for _ in range(STEPS):
                    timed("whole pass", engine.mission_advance)(mission_id=mission.id)
    finally:
        for phase in phases:
            phase.stop()
        broker = redis.Redis.from_url(os.environ["STUDIOX_BROKER_URL"])
        for key in broker.scan_iter(f"{UNREAD_QUEUE}*"):  # one list per priority
            broker.delete(key)
    commit = median_ms(commit_baseline())
    for phase, values in samples.items():
        print(f"{phase:<11} median {statistics.median(values) * 1000:.3f} ms ({len(values)})")
    print(f"one commit  median {commit:.3f} ms")


if __name__ == "__main__":
    main()
