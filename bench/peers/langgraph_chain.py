"""LangGraph with PostgresSaver, durability "sync": a graph of STEPS nodes in a line,
MISSIONS threads run at once from a thread pool.

With durability "sync" each super-step's checkpoint is written before the next node starts,
the durable mode comparable with a checkpointed step. Run by `bench.production` in the
peers' virtualenv.
"""

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from bench.peers.peer_common import (
    arguments,
    drop_database,
    gaps_ms,
    median,
    recreate_database,
    report,
    versions,
)

POOL_SIZE = 20  # connections shared by the threads, as an application's pool would be
finished_at: dict[str, list[float]] = defaultdict(list)  # per thread id, node finish times


class State(TypedDict):
    count: int


def node(state: State, config: RunnableConfig) -> State:
    finished_at[config["configurable"]["thread_id"]].append(time.time())
    return {"count": state["count"] + 1}


def build(steps: int, checkpointer: PostgresSaver):
    graph = StateGraph(State)
    names = [f"n{i}" for i in range(steps)]
    for name in names:
        graph.add_node(name, node)
    for earlier, later in zip([START, *names], [*names, END], strict=True):
        graph.add_edge(earlier, later)
    return graph.compile(checkpointer=checkpointer)


def run(graph, thread_id: str, steps: int) -> list[float]:
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": steps + 10}
    graph.invoke({"count": 0}, config, durability="sync")
    return finished_at[thread_id]


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    recreate_database(args.database_url)
    pool = ConnectionPool(
        args.database_url,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    try:
        checkpointer = PostgresSaver(pool)
        checkpointer.setup()
        graph = build(args.steps, checkpointer)
        run(build(2, checkpointer), "warm-up", 2)
        gaps: list[float] = []
        for i in range(args.gap_runs):
            gaps += gaps_ms(run(graph, f"alone-{i}", args.steps))
        started = time.time()
        with ThreadPoolExecutor(max_workers=args.missions) as threads:
            marks = list(
                threads.map(lambda i: run(graph, f"t-{i}", args.steps), range(args.missions))
            )
        elapsed = max(max(m) for m in marks) - started
    finally:
        pool.close()
        drop_database(args.database_url)
    report(
        {
            "peer": "LangGraph",
            "version": versions("langgraph", "langgraph-checkpoint-postgres"),
            "gap_ms": median(gaps),
            "steps_per_s": args.missions * args.steps / elapsed,
            "elapsed_s": elapsed,
            "mode": f'PostgresSaver, durability "sync", {args.missions} threads, '
            f"pool of {POOL_SIZE} connections",
        }
    )


if __name__ == "__main__":
    main()
