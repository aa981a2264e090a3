"""The cost of step 1,000 against step 10 in long missions (SPEC §11: ≤ 2×).

One task per step, as by default: every advance takes the lease, replays the steps before it
from their records and checkpoints the next one. The broker hop is left out (it does not
depend on the position); see bench.throughput for it. Two missions are brought to step 10 and
step 1,000, then advanced alternately, one step each, so that both medians come from the same
seconds of a shared machine.
"""

import time

from bench.common import median_ms, setup_django

EARLY, LATE = 10, 1_000
SAMPLES = 50


def main() -> None:
    setup_django()
    from missions import engine
    from missions.models import Mission
    from missions.services import mission_start

    engine.enqueue_advance = lambda mission_id, **options: None  # this script drives every advance

    def brought_to(position: int) -> Mission:
        mission = mission_start(type="bench_noop", input={"steps": position + SAMPLES}).mission
        for _ in range(position):
            engine.mission_advance(mission_id=mission.id, worker="bench")
        return mission

    missions = {f"step {EARLY}": brought_to(EARLY), f"step {LATE}": brought_to(LATE)}
    cost: dict[str, list[float]] = {label: [] for label in missions}
    for _ in range(SAMPLES):
        for label, mission in missions.items():
            started = time.perf_counter()
            engine.mission_advance(mission_id=mission.id, worker="bench")
            cost[label].append(time.perf_counter() - started)
    medians = {label: median_ms(samples) for label, samples in cost.items()}
    for label, value in medians.items():
        print(f"{label}: median {value:.3f} ms per advance ({SAMPLES} advances)")
    ratio = medians[f"step {LATE}"] / medians[f"step {EARLY}"]
    print(f"ratio step {LATE} / step {EARLY}: {ratio:.2f}x (target <= 2.0x)")
    Mission.objects.filter(id__in=[mission.id for mission in missions.values()]).delete()


if __name__ == "__main__":
    main()
