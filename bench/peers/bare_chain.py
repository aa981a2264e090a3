"""The bare chain: what a plain Celery app does for a durable sequence of steps.

One Celery task per step; each step commits one PostgreSQL transaction (an INSERT of its
finish time) and then enqueues the next step. Two worker processes (prefork, the default
pool), Redis broker, Celery's defaults otherwise. Run by `bench.production` in the peers'
virtualenv: `bench/.venv-peers/bin/python -m bench.peers.bare_chain --database-url ... \
--broker-url ...`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from celery import Celery

from bench.peers.peer_common import (
    arguments,
    drop_database,
    gaps_ms,
    median,
    recreate_database,
    report,
    versions,
    wait_until,
)

QUEUE = "bench_chain"
ROOT = Path(__file__).resolve().parents[2]

app = Celery("bench_chain")
app.conf.update(
    broker_url=os.environ.get("BENCH_CHAIN_BROKER_URL", "redis://127.0.0.1:6379/12"),
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_connection: psycopg.Connection | None = None


def connection() -> psycopg.Connection:
    """One connection per worker process, opened after the fork, kept from task to task."""
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BENCH_CHAIN_DATABASE_URL"], autocommit=True)
    return _connection


@app.task(name="bench_chain.step")
def step(chain: int, position: int, steps: int) -> None:
    conn = connection()
    with conn.transaction():
        conn.execute(
            "INSERT INTO chain_step (chain, position, finished_at)"
            " VALUES (%s, %s, clock_timestamp())",
            [chain, position],
        )
    if position + 1 < steps:
        step.delay(chain, position + 1, steps)


def create_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE chain_step (chain int, position int, finished_at timestamptz,"
            " PRIMARY KEY (chain, position))"
        )


def start_workers() -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "bench.peers.bare_chain", "worker"),
            *("-Q", QUEUE, "--concurrency", "2", "--loglevel", "WARNING"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the fallback SIGKILL reaches the children
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Chains:
    """Starts chains and reads their steps' finish times back from the database."""

    def __init__(self, url: str, steps: int, timeout: float) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.steps, self.timeout = steps, timeout
        self.next_chain = 0

    def start(self, count: int) -> list[int]:
        chains = list(range(self.next_chain, self.next_chain + count))
        self.next_chain += count
        for chain in chains:
            step.delay(chain, 0, self.steps)
        return chains

    def wait(self, chains: list[int]) -> None:
        expected = len(chains) * self.steps
        wait_until(
            lambda: self.done(chains) == expected, self.timeout, f"{len(chains)} bare chains"
        )

    def done(self, chains: list[int]) -> int:
        query = "SELECT count(*) FROM chain_step WHERE chain = ANY(%s)"
        return self.conn.execute(query, [chains]).fetchone()[0]

    def finish_times(self, chain: int) -> list[float]:
        rows = self.conn.execute(
            "SELECT extract(epoch FROM finished_at) FROM chain_step"
            " WHERE chain = %s ORDER BY position",
            [chain],
        ).fetchall()
        return [float(row[0]) for row in rows]

    def last_finish(self, chains: list[int]) -> float:
        query = "SELECT extract(epoch FROM max(finished_at)) FROM chain_step WHERE chain = ANY(%s)"
        return float(self.conn.execute(query, [chains]).fetchone()[0])


def measure(chains: Chains, missions: int, gap_runs: int) -> dict:
    chains.wait(chains.start(2))  # both worker processes up and connected
    gaps: list[float] = []
    for _ in range(gap_runs):
        (alone,) = chains.start(1)
        chains.wait([alone])
        gaps += gaps_ms(chains.finish_times(alone))
    started = time.time()
    batch = chains.start(missions)
    chains.wait(batch)
    elapsed = chains.last_finish(batch) - started
    return {
        "gap_ms": median(gaps),
        "steps_per_s": missions * chains.steps / elapsed,
        "elapsed_s": elapsed,
        "mode": "one Celery task per step, prefork 2 processes, Redis broker",
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    os.environ["BENCH_CHAIN_DATABASE_URL"] = args.database_url
    os.environ["BENCH_CHAIN_BROKER_URL"] = args.broker_url
    app.conf.broker_url = args.broker_url
    recreate_database(args.database_url)
    create_table(args.database_url)
    workers = start_workers()
    try:
        result = measure(
            Chains(args.database_url, args.steps, args.timeout), args.missions, args.gap_runs
        )
    finally:
        stop(workers)
        drop_database(args.database_url)
    report({"peer": "bare chain", "version": versions("celery", "psycopg"), **result})


if __name__ == "__main__":
    main()
