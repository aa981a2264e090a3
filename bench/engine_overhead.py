"""Engine overhead per no-op step against one PostgreSQL commit, measured in the same run.

Target (SPEC §11): median ≤ 2× one PostgreSQL commit. The steps run within a time slice
(STUDIOX_TIME_SLICE_MS), each still under its own checkpoint transaction; the broker hop of
the one-step-per-task mode is measured separately by bench.throughput.
"""

import time
from itertools import pairwise

from bench.common import commit_baseline, median_ms, percentile_ms, setup_django

STEPS = 2000


def main() -> None:
    setup_django()
    from django.conf import settings

    from missions import engine
    from missions.models import Mission
    from missions.services import mission_start

    settings.STUDIOX_TIME_SLICE_MS = 3_600_000  # one task runs the whole mission, step by step
    engine.enqueue_advance = lambda mission_id, **options: (
        None
    )  # nothing else is running: no broker

    baseline = commit_baseline()

    mission = mission_start(type="bench_noop", input={"steps": STEPS}).mission
    marks: list[float] = []
    original_after = engine.MissionContext._after_checkpoint

    def mark(self, step):
        marks.append(time.perf_counter())
        return original_after(self, step)

    engine.MissionContext._after_checkpoint = mark
    started = time.perf_counter()
    engine.mission_advance(mission_id=mission.id)
    total = time.perf_counter() - started
    engine.MissionContext._after_checkpoint = original_after
    step_times = [b - a for a, b in pairwise(marks)]
    mission.refresh_from_db()
    assert mission.status == "succeeded", mission.error
    commit_ms, step_ms = median_ms(baseline), median_ms(step_times)
    print(f"database: {settings.DATABASES['default']['ENGINE']}")
    print(
        f"one PostgreSQL commit of a small row: median {commit_ms:.3f} ms, "
        f"p99 {percentile_ms(baseline, 99):.3f} ms"
    )
    print(
        f"engine no-op step (checkpoint + observation): median {step_ms:.3f} ms, "
        f"p99 {percentile_ms(step_times, 99):.3f} ms"
    )
    print(f"steps/s in one process: {STEPS / total:.0f}")
    print(f"ratio step/commit: {step_ms / commit_ms:.2f}x (target <= 2.0x)")
    Mission.objects.filter(id=mission.id).delete()


if __name__ == "__main__":
    main()
