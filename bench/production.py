"""StudioX as deployed, measured beside its peers in the same run.

Starts the stack exactly as README's Production section does: a scratch PostgreSQL database
(`studiox_benchprod`, recreated), `manage.py migrate`, `uvicorn studiox.asgi:application
--workers 2` (one web process per core) on a free loopback port, `celery -A studiox worker -Q
studiox` (default prefork pool, `--concurrency 2`), `celery -A studiox beat`, Redis broker
(db 12), channel layer and cache (db 13).
Missions are started with `POST /api/missions/` under a token from `create_api_token`; step
timings are read back from the mission's step rows.

Beside it, on the same PostgreSQL and Redis, the peers run one after the other in their own
virtualenv (create it once with `sh bench/peers/setup.sh`): a bare Celery chain, DBOS
Transact and LangGraph with PostgresSaver; and one PostgreSQL commit as the baseline.

Run from the project root: `.venv/bin/python -m bench.production`. Sizes (environment):
BENCH_MISSIONS (50), BENCH_STEPS (40), BENCH_GAP_RUNS (3 lone missions for the gap),
BENCH_POSTS (100 one at a time), BENCH_CLIENTS (8), BENCH_CONCURRENT_POSTS (400),
BENCH_TIMEOUT (300 s per wait), BENCH_WEB_PROCESSES (2), BENCH_ROUNDS (2: the peers then
StudioX, then StudioX then the peers; each figure is the median of the rounds, for two the
mean). Servers: BENCH_PG_URL (postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL
(redis://127.0.0.1:6379). BENCH_JSON names a file that also gets every figure as JSON. A
quick run: `BENCH_MISSIONS=5 BENCH_STEPS=5 BENCH_POSTS=10 BENCH_CONCURRENT_POSTS=40
BENCH_ROUNDS=1 .venv/bin/python -m bench.production`.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
RESULT_PREFIX = "BENCH_RESULT "  # as bench.peers.peer_common prints it
STARTED: list[subprocess.Popen] = []  # every process this run started, stopped at the end


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


MISSIONS = env_int("BENCH_MISSIONS", 50)
STEPS = env_int("BENCH_STEPS", 40)
GAP_RUNS = env_int("BENCH_GAP_RUNS", 3)
POSTS = env_int("BENCH_POSTS", 100)
CLIENTS = env_int("BENCH_CLIENTS", 8)
CONCURRENT_POSTS = env_int("BENCH_CONCURRENT_POSTS", 400)
ROUNDS = env_int("BENCH_ROUNDS", 2)  # each figure: the median of the rounds (see measure_round)
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
DATABASE = "studiox_benchprod"
BROKER_DB, CHANNEL_LAYER_DB = 12, 13
TIME_SLICE_MS = 50
WEB_PROCESSES = env_int("BENCH_WEB_PROCESSES", 2)  # README's Production section: one per core
QUEUE = "studiox"
BENCH_USER = "bench"
MISSION_TYPE = "bench_noop"


def studiox_environment(var_dir: Path) -> dict[str, str]:
    """Production settings only: any STUDIOX_* or DATABASE_URL of the caller is left out, so
    a developer's shell cannot change what is measured."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STUDIOX_") and key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    return {
        **inherited,
        "DATABASE_URL": f"{PG_URL}/{DATABASE}",
        "STUDIOX_BROKER_URL": f"{REDIS_URL}/{BROKER_DB}",
        "STUDIOX_CHANNEL_LAYER_URL": f"{REDIS_URL}/{CHANNEL_LAYER_DB}",
        # Several web processes share their rate limits through Redis (README, Production).
        "STUDIOX_CACHE_URL": f"{REDIS_URL}/{CHANNEL_LAYER_DB}",
        "STUDIOX_SECRET_KEY": secrets.token_urlsafe(50),
        "STUDIOX_ALLOWED_HOSTS": "127.0.0.1",
        "STUDIOX_MISSION_MODULES": "bench.missions",
        "STUDIOX_VAR_DIR": str(var_dir),
        "STUDIOX_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "studiox.settings",
    }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM by pid (Celery and uvicorn shut down warm, prefork children included); past
    the grace period SIGKILL its process group: each process leads its own, and no other
    process can take that id while the leader is still alive."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """Web server, workers and scheduler, as README's Production section runs them."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    base_url: str = ""

    def spawn(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        STARTED.append(self.processes[name])
        log.close()

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.spawn(
            "web",
            [
                *("uvicorn", "studiox.asgi:application", "--host", "127.0.0.1"),
                *("--port", str(port), "--workers", str(WEB_PROCESSES)),
            ],
        )
        self.spawn(
            "worker", ["celery", "-A", "studiox", "worker", "-Q", QUEUE, "--concurrency", "2"]
        )
        self.spawn("beat", ["celery", "-A", "studiox", "beat"])
        self.wait_for_web()

    def wait_for_web(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not become healthy:\n{self.logs()}")

    def check_alive(self) -> None:
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}.log\n{tail(self.log_dir / f'{name}.log')}" for name in self.processes
        )

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process(process)
        self.processes.clear()


def run_peer(module: str, database: str, sizes: list[str], log_dir: Path) -> dict | None:
    """One peer script in the peers' virtualenv; its last BENCH_RESULT line is the answer."""
    log = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(str(PEER_PYTHON), "-m", module, "--database-url", f"{PG_URL}/{database}"),
                *("--broker-url", f"{REDIS_URL}/{BROKER_DB}", *sizes),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        STARTED.append(process)
        try:
            process.wait(timeout=TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            print(f"{module}: no answer after {TIMEOUT * 3:.0f} s, stopped", file=sys.stderr)
        finally:
            stop_process(process, grace=30)
    results = [
        line[len(RESULT_PREFIX) :]
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    if not results:
        print(f"{module} failed:\n{tail(log)}", file=sys.stderr)
        return None
    return json.loads(results[-1])


# --- the API and the database --------------------------------------------------------------


class Api:
    """CLIENTS threads, each with its own httpx client (a keep-alive connection), as separate
    clients are. The threads and their clients live as long as the Api: building an httpx
    client costs the benchmark's own process tens of milliseconds of CPU, taken from the
    cores the stack runs on."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token
        self.local = threading.local()
        self.clients = ThreadPoolExecutor(max_workers=CLIENTS)

    def client(self):
        import httpx

        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Token {self.token}"},
                timeout=30,
            )
        return self.local.client

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info) -> None:
        self.clients.shutdown()

    def start_mission(self, steps: int) -> tuple[int, str | None]:
        response = self.client().post(
            "/api/missions/", json={"type": MISSION_TYPE, "input": {"steps": steps}}
        )
        mission_id = response.json().get("id") if response.status_code == 201 else None
        return response.status_code, mission_id

    def start_many(self, count: int, steps: int) -> list[str]:
        answers = list(self.clients.map(lambda _: self.start_mission(steps), range(count)))
        refused = [status for status, mission_id in answers if mission_id is None]
        if refused:
            raise RuntimeError(f"POST /api/missions/ refused {len(refused)}: {refused[:5]}")
        return [mission_id for _, mission_id in answers]


def wait_for_missions(ids: list[str], stack: Stack) -> None:
    """Polls as the peers' scripts do, with one plain count: the observer's CPU is taken from
    the two cores the stack runs on, so it must not cost more for StudioX than for them."""
    from django.db import connection

    from missions.models import Mission

    query = (
        f"SELECT count(*), count(*) FILTER (WHERE status <> %s) FROM {Mission._meta.db_table}"
        " WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)"
    )
    final = list(Mission.FINAL_STATUSES)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        stack.check_alive()
        with connection.cursor() as cursor:
            cursor.execute(query, [Mission.Status.SUCCEEDED, ids, final])
            finished, failed = cursor.fetchone()
        if finished == len(ids):
            if failed:
                raise RuntimeError(f"{failed} of {len(ids)} missions did not succeed")
            return
        time.sleep(0.05)
    raise RuntimeError(f"missions not finished after {TIMEOUT:.0f} s:\n{stack.logs()}")


def wait_for_idle(stack: Stack) -> None:
    from missions.models import Mission

    deadline = time.monotonic() + TIMEOUT
    while Mission.objects.exclude(status__in=Mission.FINAL_STATUSES).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"missions still running after {TIMEOUT:.0f} s")
        stack.check_alive()
        time.sleep(0.1)


def step_finish_times(mission_id: str) -> list[float]:
    from missions.models import Step

    rows = Step.objects.filter(mission_id=mission_id, kind=Step.Kind.STEP).order_by("position")
    return [finished.timestamp() for finished in rows.values_list("finished_at", flat=True)]


def gaps_ms(marks: list[float]) -> list[float]:
    return [(later - earlier) * 1000 for earlier, later in itertools.pairwise(marks)]


def step_gap_ms(api: Api, stack: Stack) -> float:
    """Median of finished(step i) - finished(step i-1), each mission alone on the stack."""
    gaps: list[float] = []
    for _ in range(GAP_RUNS):
        (mission_id,) = api.start_many(1, STEPS)
        wait_for_missions([mission_id], stack)
        gaps += gaps_ms(step_finish_times(mission_id))
    return statistics.median(gaps)


def steps_per_second(api: Api, stack: Stack) -> float:
    """MISSIONS missions started at once over the API; the clock runs from the first POST to
    the last step's finish."""
    from django.db.models import Count, Max

    from missions.models import Step

    started = time.time()
    ids = api.start_many(MISSIONS, STEPS)
    wait_for_missions(ids, stack)
    steps = Step.objects.filter(mission_id__in=ids, kind=Step.Kind.STEP)
    totals = steps.aggregate(count=Count("id"), last=Max("finished_at"))
    return totals["count"] / (totals["last"].timestamp() - started)


def post_latency_ms(api: Api) -> float:
    samples = []
    for _ in range(POSTS):
        began = time.perf_counter()
        status, _ = api.start_mission(1)
        samples.append(time.perf_counter() - began)
        if status != 201:
            raise RuntimeError(f"POST /api/missions/ answered {status}")
    return statistics.median(samples) * 1000


def concurrent_starts_per_second(api: Api) -> float:
    """CLIENTS threads, each with its own connection, share CONCURRENT_POSTS starts."""
    share = [CONCURRENT_POSTS // CLIENTS + (i < CONCURRENT_POSTS % CLIENTS) for i in range(CLIENTS)]
    ready = threading.Barrier(CLIENTS + 1)

    def client(count: int) -> list[int]:
        api.client()  # built before the clock starts; it connects on its first request
        ready.wait()
        return [api.start_mission(1)[0] for _ in range(count)]

    futures = [api.clients.submit(client, count) for count in share]  # one thread each
    ready.wait()
    began = time.perf_counter()
    statuses = [status for future in futures for status in future.result()]
    elapsed = time.perf_counter() - began
    refused = [status for status in statuses if status != 201]
    if refused:
        raise RuntimeError(f"{len(refused)} of {len(statuses)} starts refused: {refused[:5]}")
    return len(statuses) / elapsed


def measure_studiox(env: dict[str, str], token: str, log_dir: Path, with_api: bool) -> dict:
    from bench.common import commit_baseline

    stack = Stack(env, log_dir)
    try:
        stack.start()
        with Api(stack.base_url, token) as api:
            # Every web and worker process connected and warm before the clock runs.
            wait_for_missions(api.start_many(2 * CLIENTS, 2), stack)
            # The gap's yardstick, taken seconds before it under the same conditions (the
            # stack up and idle): the machine's speed drifts by tens of percent in minutes.
            figures = {
                "commit_ms": statistics.median(commit_baseline()) * 1000,
                "gap_ms": step_gap_ms(api, stack),
                "steps_per_s": steps_per_second(api, stack),
            }
            if with_api:
                figures["post_ms"] = post_latency_ms(api)
                figures["starts_per_s"] = concurrent_starts_per_second(api)
        wait_for_idle(stack)  # nothing left in the queue for the next stack
        stack.check_alive()  # beat and everything else still up at the end
        return figures
    finally:
        stack.stop()


# --- set-up --------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as admin:
        name = sql.Identifier(DATABASE)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))


def flush_redis() -> None:
    import redis

    for db in (BROKER_DB, CHANNEL_LAYER_DB):
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()


def fresh_database_and_django(env: dict[str, str]) -> None:
    """An empty database and Redis, migrated; Django set up in this process to read them."""
    recreate_database()
    flush_redis()
    manage(env, "migrate", "--verbosity", "0")
    import django

    django.setup()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def api_token(env: dict[str, str]) -> str:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(BENCH_USER)  # no password: the token only
    return manage(env, "create_api_token", BENCH_USER)


def machine() -> dict[str, str]:
    import redis
    from django.db import connection

    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    info = redis.Redis.from_url(f"{REDIS_URL}/{BROKER_DB}").info("server")
    return {
        "cpus": f"{os.cpu_count()} (nproc {len(os.sched_getaffinity(0))})",
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "postgres": postgres,
        "redis": info["redis_version"],
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }


# --- the table -----------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}×" if value and base else "n/a"


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} {unit}" if unit == "ms" else f"{value:.0f} {unit}"


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def rows(studiox: dict, sliced: dict, peers: dict[str, dict | None]) -> list:
    def peer(name: str, key: str) -> float | None:
        return (peers.get(name) or {}).get(key)

    bare = {key: peer("bare chain", key) for key in ("gap_ms", "steps_per_s")}
    gaps = [peer(name, "gap_ms") for name in peers if peer(name, "gap_ms")]
    rates = [peer(name, "steps_per_s") for name in peers if peer(name, "steps_per_s")]
    best_gap, best_rate = min(gaps, default=None), max(rates, default=None)
    dbos_rate = peer("DBOS", "steps_per_s")

    def check(condition: Callable[[], bool], *needed: float | None) -> bool | None:
        return condition() if all(value for value in needed) else None

    def figure(label, value, unit, key, best, target, met, commit_ms=None) -> list[str]:
        return [
            label,
            number(value, unit),
            *(number(peer(name, key), unit) if key else "" for name in PEERS),
            number(commit_ms, "ms") if commit_ms else "",
            ratio(value, bare.get(key)) if key else "",
            ratio(value, best) if key else "",
            ratio(value, commit_ms) if commit_ms else "",
            target,
            verdict(met),
        ]

    gap, rate = studiox["gap_ms"], studiox["steps_per_s"]
    sliced_gap, sliced_rate = sliced["gap_ms"], sliced["steps_per_s"]
    return [
        figure(
            "(a) per-step gap, default",
            gap,
            "ms",
            "gap_ms",
            best_gap,
            "≤ 1.5× bare chain",
            check(lambda: gap <= 1.5 * bare["gap_ms"], gap, bare["gap_ms"]),
            studiox.get("commit_ms"),
        ),
        figure(
            f"(b) steps/s, {MISSIONS}×{STEPS}, default",
            rate,
            "/s",
            "steps_per_s",
            best_rate,
            "≥ 0.75× bare chain and ≥ DBOS",
            check(
                lambda: rate >= 0.75 * bare["steps_per_s"] and rate >= dbos_rate,
                rate,
                bare["steps_per_s"],
                dbos_rate,
            ),
        ),
        figure(
            f"(c) per-step gap, time slice {TIME_SLICE_MS} ms",
            sliced_gap,
            "ms",
            "gap_ms",
            best_gap,
            "≤ 2× one commit",
            check(
                lambda: sliced_gap <= 2 * sliced["commit_ms"], sliced_gap, sliced.get("commit_ms")
            ),
            sliced.get("commit_ms"),
        ),
        figure(
            f"(d) steps/s, {MISSIONS}×{STEPS}, time slice {TIME_SLICE_MS} ms",
            sliced_rate,
            "/s",
            "steps_per_s",
            best_rate,
            "≥ 1.5× best peer",
            check(lambda: sliced_rate >= 1.5 * best_rate, sliced_rate, best_rate),
        ),
        figure(
            f"(e) POST /api/missions/ median, one at a time ({POSTS})",
            studiox.get("post_ms"),
            "ms",
            None,
            None,
            "≤ 15 ms",
            check(lambda: studiox["post_ms"] <= 15, studiox.get("post_ms")),
        ),
        figure(
            f"(e) starts/s, {CLIENTS} clients ({CONCURRENT_POSTS})",
            studiox.get("starts_per_s"),
            "/s",
            None,
            None,
            "≥ 200 starts/s",
            check(lambda: studiox["starts_per_s"] >= 200, studiox.get("starts_per_s")),
        ),
    ]


PEERS = ("bare chain", "DBOS", "LangGraph")
PEER_SCRIPTS = [
    ("bare chain", "bench.peers.bare_chain", "studiox_benchchain"),
    ("DBOS", "bench.peers.dbos_chain", "studiox_benchdbos"),
    ("LangGraph", "bench.peers.langgraph_chain", "studiox_benchlanggraph"),
]
HEADER = [
    "figure",
    "StudioX",
    *PEERS,
    "1 commit",
    "StudioX / bare chain",
    "StudioX / best peer",
    "gap / 1 commit",
    "target",
    "",
]


def print_table(table: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]
    for row in [HEADER, ["-" * width for width in widths], *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def print_report(facts: dict, studiox: dict, sliced: dict, peers: dict) -> None:
    print()
    print(
        "StudioX, production configuration, beside its peers (same run, same PostgreSQL and Redis)"
    )
    for key, value in facts.items():
        print(f"  {key:<11} {value}")
    busiest = max(os.getloadavg()[0], float(facts["load"].split()[0]))
    if busiest > len(os.sched_getaffinity(0)):
        # Other work on the machine shares the cores: the ratios, taken in the same run,
        # hold better than the absolute figures.
        print(f"  warning     the machine was busy (load {busiest:.1f}): compare ratios")
    print()
    print_table(rows(studiox, sliced, peers))
    print()
    print(f"StudioX: uvicorn studiox.asgi:application --workers {WEB_PROCESSES}, celery -A studiox")
    print("  worker -Q studiox --concurrency 2 (prefork), celery -A studiox beat; missions started")
    print(f"  with POST /api/missions/ ({MISSION_TYPE}: no-op steps); Redis db {BROKER_DB} broker,")
    print(f"  db {CHANNEL_LAYER_DB} channel layer and cache. Gap: median over {GAP_RUNS} lone")
    print(
        f"  missions of {STEPS} steps. Steps/s: first POST to the last step's finish. Time slice:"
    )
    print(f"  STUDIOX_TIME_SLICE_MS={TIME_SLICE_MS} in web, workers and beat.")
    for name in PEERS:
        result = peers.get(name)
        print(f"{name}: " + (f"{result['version']}; {result['mode']}" if result else "failed"))
    print("1 commit: median of 500 INSERT + COMMIT through Django's connection (bench.common),")
    print("  taken with the stack up and idle, just before the gap it measures.")
    print(f"Rounds: {ROUNDS}, the peers first in odd rounds and StudioX first in even ones; each")
    print("  figure is the median of the rounds (for two, the mean); the lines above describe the")
    print("  first round.")
    print("Ratios: StudioX / peer of the same figure (a gap is better lower, a rate higher); the")
    print("  best peer is the lowest gap or the highest rate of the three.")


# --- main ----------------------------------------------------------------------------------


def progress(figures: dict | None) -> None:
    """The figures of one phase as soon as they are known: a long run shows where it is."""
    if figures:
        numbers = [
            f"{key} {value:.2f}" for key, value in figures.items() if isinstance(value, float)
        ]
        print("  " + ", ".join(numbers), flush=True)


def interrupt_once() -> None:
    """Ctrl-C or SIGTERM interrupts the measurement once; a second one while the processes
    are being stopped is ignored, so the clean-up runs to the end."""

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def measure_round(index: int, env: dict[str, str], token: str, scratch: Path) -> dict:
    """The peers and StudioX once each; every other round StudioX goes first, so that a
    machine growing slower or faster during the run favours neither side of a ratio."""
    found: dict = {"peers": {}}

    def the_peers() -> None:
        sizes = [
            *("--missions", str(MISSIONS), "--steps", str(STEPS)),
            *("--gap-runs", str(GAP_RUNS), "--timeout", str(TIMEOUT)),
        ]
        for name, module, database in PEER_SCRIPTS:
            print(f"round {index + 1}: measuring {name}…", flush=True)
            found["peers"][name] = run_peer(module, database, sizes, scratch)
            progress(found["peers"][name])
        flush_redis()

    def studiox() -> None:
        print(f"round {index + 1}: measuring StudioX, default…", flush=True)
        found["default"] = measure_studiox(env, token, scratch, with_api=True)
        progress(found["default"])
        print(f"round {index + 1}: measuring StudioX, time slice {TIME_SLICE_MS} ms…", flush=True)
        sliced_env = {**env, "STUDIOX_TIME_SLICE_MS": str(TIME_SLICE_MS)}
        found["time_slice"] = measure_studiox(sliced_env, token, scratch, with_api=False)
        progress(found["time_slice"])

    for phase in (the_peers, studiox) if index % 2 == 0 else (studiox, the_peers):
        phase()
    return found


def combined(results: list[dict | None]) -> dict | None:
    """One figure per key, the median of the rounds that measured it (for two, the mean);
    the text of the first (versions, mode). None if no round did."""
    measured = [result for result in results if result]
    if not measured:
        return None
    figures = dict(measured[0])
    for key, value in figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            figures[key] = statistics.median(result[key] for result in measured if key in result)
    return figures


def main() -> None:
    if not PEER_PYTHON.exists():
        raise SystemExit("The peers' virtualenv is missing: run `sh bench/peers/setup.sh` first.")
    interrupt_once()
    scratch = Path(tempfile.mkdtemp(prefix="studiox-benchprod-"))
    env = studiox_environment(scratch / "var")
    os.environ.update(env)  # this process reads the step rows with the same settings
    finished = False
    try:
        fresh_database_and_django(env)
        from bench.common import commit_baseline

        token = api_token(env)
        facts = machine()
        # Shown beside the table: the commit the gaps are held against is each stack's own.
        idle_commit = statistics.median(commit_baseline()) * 1000
        facts["commit"] = f"{idle_commit:.2f} ms at the start, with no stack up"
        rounds = [measure_round(index, env, token, scratch) for index in range(ROUNDS)]
        peers = {name: combined([found["peers"][name] for found in rounds]) for name in PEERS}
        studiox = combined([found["default"] for found in rounds])
        sliced = combined([found["time_slice"] for found in rounds])
        facts["load"] += " at start; {:.2f} {:.2f} {:.2f} at end".format(*os.getloadavg())
        facts["sizes"] = (
            f"BENCH_MISSIONS={MISSIONS} BENCH_STEPS={STEPS} BENCH_GAP_RUNS={GAP_RUNS} "
            f"BENCH_POSTS={POSTS} BENCH_CLIENTS={CLIENTS} BENCH_CONCURRENT_POSTS={CONCURRENT_POSTS}"
            f" BENCH_ROUNDS={ROUNDS}"
        )
        print_report(facts, studiox, sliced, peers)
        if os.environ.get("BENCH_JSON"):
            figures = {"default": studiox, "time_slice": sliced, "rounds": rounds}
            Path(os.environ["BENCH_JSON"]).write_text(
                json.dumps({"machine": facts, **figures, "peers": peers}, indent=2)
            )
        finished = True
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for process in reversed(STARTED):
            stop_process(process)
        flush_redis()
        if finished:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"logs kept in {scratch}", file=sys.stderr)


if __name__ == "__main__":
    main()
