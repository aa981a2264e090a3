"""DBOS Transact: one workflow of STEPS no-op steps, MISSIONS of them started at once.

DBOS runs steps in-process and checkpoints each step's output in its system database
(PostgreSQL). Its two ways to start many workflows are both measured and the better one is
reported: `DBOS.start_workflow` (each workflow on DBOS's thread pool at once) and a `Queue`
with a concurrency limit (DBOS's flow control, polled quickly). Run by `bench.production` in
the peers' virtualenv.
"""

import time

from dbos import DBOS, DBOSConfig, Queue

from bench.peers.peer_common import (
    arguments,
    drop_database,
    gaps_ms,
    median,
    report,
    versions,
)

QUEUE_CONCURRENCY = 16  # enough workflows in flight to keep one process busy
queue = Queue("bench", concurrency=QUEUE_CONCURRENCY, polling_interval_sec=0.01)


@DBOS.step()
def noop_step() -> float:
    """Returns when it finished: its output is checkpointed right after."""
    return time.time()


@DBOS.workflow()
def chain(steps: int) -> list[float]:
    return [noop_step() for _ in range(steps)]


def throughput(start, missions: int, steps: int) -> tuple[float, float]:
    started = time.time()
    handles = [start(chain, steps) for _ in range(missions)]
    last = max(max(handle.get_result()) for handle in handles)
    elapsed = last - started
    return missions * steps / elapsed, elapsed


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    drop_database(args.database_url)  # DBOS creates and migrates its system database itself
    config: DBOSConfig = {
        "name": "studiox-bench",
        "system_database_url": args.database_url,
        "log_level": "WARNING",
        "run_admin_server": False,
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        DBOS.start_workflow(chain, 2).get_result()  # warm-up: connections and statements
        gaps: list[float] = []
        for _ in range(args.gap_runs):
            gaps += gaps_ms(DBOS.start_workflow(chain, args.steps).get_result())
        modes = {
            "start_workflow": throughput(DBOS.start_workflow, args.missions, args.steps),
            f"queue (concurrency {QUEUE_CONCURRENCY})": throughput(
                queue.enqueue, args.missions, args.steps
            ),
        }
    finally:
        DBOS.destroy()
        drop_database(args.database_url)
    best = max(modes, key=lambda mode: modes[mode][0])
    report(
        {
            "peer": "DBOS",
            "version": versions("dbos"),
            "gap_ms": median(gaps),
            "steps_per_s": modes[best][0],
            "elapsed_s": modes[best][1],
            "mode": "one process, best of: "
            + ", ".join(f"{mode} {rate:.0f} steps/s" for mode, (rate, _) in modes.items()),
        }
    )


if __name__ == "__main__":
    main()
