"""The cost of step 1,000 against step 10 in one long mission (SPEC §11: ≤ 2×).

One task per step, as by default: every advance takes the lease, replays the steps before it
from their records and checkpoints the next one. The broker hop is left out (it does not
depend on the position); see bench.throughput for it.
"""

import time

from bench.common import median_ms, setup_django

STEPS = 1_020
WINDOWS = {"step 10": range(10, 20), "step 1000": range(1_000, 1_010)}


def main() -> None:
    setup_django()
    from missions import engine
    from missions.models import Mission
    from missions.services import mission_start

    engine.enqueue_advance = lambda mission_id: None  # this script drives every advance
    mission = mission_start(type="bench_noop", input={"steps": STEPS}).mission
    cost: list[float] = []
    for _ in range(STEPS + 1):
        started = time.perf_counter()
        engine.mission_advance(mission_id=mission.id, worker="bench")
        cost.append(time.perf_counter() - started)
    mission.refresh_from_db()
    assert mission.status == "succeeded", mission.error
    medians = {label: median_ms([cost[i] for i in window]) for label, window in WINDOWS.items()}
    for label, value in medians.items():
        print(f"{label}: median {value:.3f} ms per advance")
    ratio = medians["step 1000"] / medians["step 10"]
    print(f"ratio step 1000 / step 10: {ratio:.2f}x (target <= 2.0x)")
    Mission.objects.filter(id=mission.id).delete()


if __name__ == "__main__":
    main()
