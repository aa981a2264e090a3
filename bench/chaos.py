"""Chaos (SPEC §11): 200 side-effecting missions while workers are killed with SIGKILL and
Redis and PostgreSQL are restarted. Every mission must reach its verdict; each database
booking must exist exactly once; each payment key must be paid once (the ledger dedupes by
key: attempts for the same key may repeat, effects may not).

Restarts this machine's PostgreSQL and Redis: run it on a machine of your own, nothing else
running. `.venv/bin/python -m bench.chaos`
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, setup_django

MISSIONS = int(os.environ.get("BENCH_CHAOS_MISSIONS", "200"))
PG_RESTART = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"]
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "studiox", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def worker(env: dict, n: int) -> subprocess.Popen:
    return spawn(
        [
            "worker",
            "-Q",
            "studiox",
            "--pool=solo",
            "-n",
            f"chaos{n}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
    )


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], check=False)
    time.sleep(1)
    subprocess.run(REDIS_START, check=True)


def main() -> None:
    setup_django()
    from django.contrib.auth.models import Group
    from django.db import connection

    from missions.models import Mission
    from missions.services import mission_start

    ledger = Path(tempfile.mkdtemp()) / "ledger.log"
    env = {**os.environ, "STUDIOX_LEASE_SECONDS": "3", "STUDIOX_TICK_SECONDS": "0.5"}
    workers = [worker(env, i) for i in range(2)]
    beat = spawn(["beat", "--schedule", str(ledger.parent / "beat")], env)
    ids = [
        mission_start(type="bench_effects", input={"ledger": str(ledger), "index": i}).mission.id
        for i in range(MISSIONS)
    ]
    chaos = ["kill", "kill", "redis", "kill", "postgres", "kill"]
    started = time.monotonic()
    n = 2
    try:
        for event in chaos:
            time.sleep(random.uniform(1.0, 3.0))
            if event == "kill":
                victim = random.choice(workers)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                workers.remove(victim)
                workers.append(worker(env, n))
                n += 1
            elif event == "redis":
                restart_redis()
            else:
                subprocess.run(PG_RESTART, check=True)
                connection.close()
            print(f"{time.monotonic() - started:6.1f}s chaos: {event}")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                done = Mission.objects.filter(id__in=ids, status="succeeded").count()
            except Exception:
                connection.close()
                time.sleep(1)
                continue
            if done == len(ids):
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        from django.db.models import Count

        statuses = dict(
            Mission.objects.filter(id__in=ids).values_list("status").annotate(n=Count("id"))
        )
        done = Mission.objects.filter(id__in=ids, status="succeeded").count()
        bookings = Group.objects.filter(name__in=[f"booked-{i}" for i in ids]).count()
        attempts = ledger.read_text().splitlines() if ledger.exists() else []
        keys = {line.split()[1] for line in attempts}
        print(f"verdicts: {done}/{len(ids)} missions succeeded in {elapsed:.0f} s {statuses}")
        print(
            f"database bookings (ctx.transaction): {bookings} for {len(ids)} missions "
            "(target: exactly one each)"
        )
        print(
            f"payments: {len(keys)} distinct keys paid for {len(ids)} missions; "
            f"{len(attempts) - len(keys)} repeated attempts deduped by key"
        )
    finally:
        for process in [*workers, beat]:
            process.terminate()
        for process in [*workers, beat]:
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
