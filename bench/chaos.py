"""Chaos (SPEC §11): 200 side-effecting missions while workers are killed with SIGKILL and
Redis and PostgreSQL are killed and restarted. Every mission must reach its verdict; each
database booking must exist exactly once; each payment key must be paid once (the ledger
dedupes by key: attempts for the same key may repeat, effects may not).

It runs its own PostgreSQL cluster and its own Redis on spare loopback ports, in a scratch
directory, so it can crash them freely without touching the services of the machine:
`.venv/bin/python -m bench.chaos` (BENCH_CHAOS_MISSIONS=50 for a shorter run).
"""

import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT

MISSIONS = int(os.environ.get("BENCH_CHAOS_MISSIONS", "200"))
WORK_MS = 30  # per work step: 200 missions keep two workers busy for the whole chaos
PG_PORT, REDIS_PORT = 55432, 56379
CHAOS = ["kill", "redis", "kill", "postgres", "kill", "redis", "kill", "postgres", "kill"]


def pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found = shutil.which(name) or (str(versions[-1] / name) if versions else None)
    if found is None or not Path(found).exists():
        raise SystemExit(f"PostgreSQL's {name} is needed for the chaos bench")
    return found


class OwnPostgres:
    """A throw-away cluster; crash() is an immediate shutdown, as a power cut would be."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.data.mkdir()
        # initdb refuses to run as root: run the cluster as the postgres user then.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self.run([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"])
        self.process: subprocess.Popen | None = None

    def run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, user=self.user)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                pg_bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(PG_PORT),
                "-k",
                str(self.data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
            ],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: (
                subprocess.run(
                    [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-q"]
                ).returncode
                == 0
            )
        )

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: recovery on restart
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            self.process.wait(timeout=60)


class OwnRedis:
    """A Redis without persistence: a restart loses every queued message, the worst case."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            )
        )

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def finished(ids: list) -> str:
    from django.db import connection

    from missions.models import Mission

    try:
        return f"{Mission.objects.filter(id__in=ids, status='succeeded').count()} finished"
    except Exception:  # the server is down right now
        connection.close()
        return "database down"


def wait_until(ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit("a service did not come up")
        time.sleep(0.2)


def spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "studiox", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def worker(queue: str, n: int) -> subprocess.Popen:
    return spawn(
        [
            *("worker", "-Q", queue, "--pool=solo", "-n", f"chaos{n}@%h"),
            *("--without-gossip", "--without-mingle"),
        ]
    )


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="studiox-chaos-"))
    postgres, redis = OwnPostgres(scratch), OwnRedis()
    postgres.start()
    redis.start()
    # The workers and beat inherit these: everything talks to the services started here.
    os.environ.update(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/studiox_chaos",
            "STUDIOX_BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "STUDIOX_CHANNEL_LAYER_URL": f"redis://127.0.0.1:{REDIS_PORT}/1",
            "STUDIOX_VAR_DIR": str(scratch / "var"),
            "STUDIOX_LEASE_SECONDS": "3",
            "STUDIOX_TICK_SECONDS": "0.5",
        }
    )
    processes: list[subprocess.Popen] = []  # every worker and beat started, for the clean-up
    try:
        measure(scratch, postgres, redis, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        redis.stop()
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def measure(scratch: Path, postgres: OwnPostgres, redis: OwnRedis, processes: list) -> None:
    from bench.common import setup_django

    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.models import Count

    from missions.models import Mission
    from missions.services import mission_start

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    ledger = scratch / "ledger.log"
    workers = [worker(queue, i) for i in range(2)]
    processes.extend([*workers, spawn(["beat", "--schedule", str(scratch / "beat")])])
    ids = [
        mission_start(
            type="bench_effects", input={"ledger": str(ledger), "index": i, "work_ms": WORK_MS}
        ).mission.id
        for i in range(MISSIONS)
    ]
    started = time.monotonic()
    n = 2
    for event in CHAOS:
        time.sleep(random.uniform(1.0, 3.0))
        if event == "kill":
            victim = random.choice(workers)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers.remove(victim)
            workers.append(worker(queue, n))
            processes.append(workers[-1])
            n += 1
        elif event == "redis":
            redis.crash()
            time.sleep(1)
            redis.start()
        else:
            postgres.crash()
            connection.close()
            time.sleep(1)
            postgres.start()
        print(f"{time.monotonic() - started:6.1f}s chaos: {event}; {finished(ids)}", flush=True)

    recovered = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            done = Mission.objects.filter(id__in=ids, status="succeeded").count()
        except Exception:  # the bench's own connection died with the server
            connection.close()
            time.sleep(1)
            continue
        if done == len(ids):
            recovered = time.monotonic() - started
            break
        time.sleep(0.5)

    statuses = dict(
        Mission.objects.filter(id__in=ids).values_list("status").annotate(n=Count("id"))
    )
    done = statuses.get("succeeded", 0)
    bookings = Group.objects.filter(name__in=[f"booked-{i}" for i in ids]).count()
    attempts = ledger.read_text().splitlines() if ledger.exists() else []
    keys = {line.split()[1] for line in attempts}
    took = f"in {recovered:.0f} s" if recovered is not None else "(gave up after 600 s)"
    print(
        f"chaos: {CHAOS.count('kill')} worker kills, {CHAOS.count('redis')} Redis and "
        f"{CHAOS.count('postgres')} PostgreSQL crashes"
    )
    print(f"verdicts: {done}/{len(ids)} missions succeeded {took}; statuses {statuses}")
    print(
        f"database bookings (ctx.transaction): {bookings} for {len(ids)} missions "
        "(target: exactly one each)"
    )
    print(
        f"payments: {len(keys)} distinct keys for {len(ids)} missions "
        f"(target: one each); {len(attempts) - len(keys)} repeated attempts deduped by key"
    )


if __name__ == "__main__":
    main()
