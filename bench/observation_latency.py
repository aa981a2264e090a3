"""Observation committed -> a WebSocket client has it (SPEC §11: median ≤ 20 ms).

Starts uvicorn on 127.0.0.1 against the bench database, connects two WebSocket clients as a
logged-in superuser (session cookie) — one on the mission's page stream, one on the rail —
then commits observations one at a time from this process, as the engine and services do
(observation_record inside a transaction, pushed after commit). Latency is the time from the
commit returning to the frame arriving, both read from this process's monotonic clock.

Run from the project root: `.venv/bin/python -m bench.observation_latency [N]`
(PostgreSQL + Redis from bench.common's defaults or DATABASE_URL / STUDIOX_*_URL).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

from bench.common import ROOT, median_ms, percentile_ms, setup_django

OBSERVATIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WARM_UP = 20
SPACING_SECONDS = 0.01  # between commits: latency, not throughput, is measured here
RECEIVE_TIMEOUT = 10.0
TARGET_MEDIAN_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(port: int) -> subprocess.Popen:
    log = open(os.environ["STUDIOX_VAR_DIR"] + f"/bench-uvicorn-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "studiox.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"uvicorn exited; see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("uvicorn did not start listening")


def session_for(user) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


class Listener:
    """A WebSocket client on its own thread and loop; notes when each sequence number arrives."""

    def __init__(self, url: str, cookie: str, origin: str):
        self.url, self.cookie, self.origin = url, cookie, origin
        self.arrived: dict[int, float] = {}
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.ready.set()

    async def _listen(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Cookie": f"sessionid={self.cookie}"}
        async with connect(self.url, additional_headers=headers, origin=self.origin) as ws:
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame["type"] == "ready":
                    self.ready.set()
                elif frame["type"] == "observations":
                    for payload in frame["observations"]:
                        self.arrived.setdefault(payload["seq"], now)


def commit_observations(mission, count: int) -> dict[int, float]:
    from django.db import transaction

    from observations.services import observation_record

    committed: dict[int, float] = {}
    for i in range(count):
        stamp: dict[str, float] = {}
        with transaction.atomic():
            # Registered first, so it runs right after COMMIT and before the push.
            transaction.on_commit(lambda stamp=stamp: stamp.setdefault("at", time.perf_counter()))
            observation = observation_record(
                mission=mission, kind="note", message=f"Checked item {i}", data={"i": i}
            )
        committed[observation.id] = stamp["at"]
        time.sleep(SPACING_SECONDS)
    return committed


def wait_for(listeners: list[Listener], seqs) -> None:
    deadline = time.monotonic() + RECEIVE_TIMEOUT
    while time.monotonic() < deadline:
        if all(all(s in listener.arrived for s in seqs) for listener in listeners):
            return
        time.sleep(0.05)


def report(name: str, committed: dict[int, float], arrived: dict[int, float]) -> float | None:
    samples = [arrived[s] - at for s, at in committed.items() if s in arrived]
    lost = len(committed) - len(samples)
    if not samples:
        print(f"{name:<16} nothing arrived ({lost} lost)")
        return None
    median = median_ms(samples)
    print(
        f"{name:<16} n={len(samples):<5} median {median:7.2f} ms   p99 "
        f"{percentile_ms(samples, 99):7.2f} ms   max {max(samples) * 1000:7.2f} ms"
        + (f"   ({lost} not received)" if lost else "")
    )
    return median


def main() -> None:
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User

    from missions.models import Mission
    from observations.publish import publisher_flush

    user, _ = User.objects.get_or_create(
        username="bench-rail", defaults={"is_staff": True, "is_superuser": True}
    )
    mission = Mission.objects.create(
        type="bench_latency", version=1, title="Latency bench", started_by=user, status="running"
    )
    port = free_port()
    web = start_web(port)
    listeners: list[Listener] = []
    try:
        cookie, origin = session_for(user), f"http://127.0.0.1:{port}"
        base = f"ws://127.0.0.1:{port}"
        listeners = [
            Listener(f"{base}/ws/missions/{mission.id}/", cookie, origin),
            Listener(f"{base}/ws/rail/", cookie, origin),
        ]
        for listener in listeners:
            if not listener.ready.wait(30) or listener.error:
                raise SystemExit(f"WebSocket client could not subscribe: {listener.error!r}")
        wait_for(listeners, commit_observations(mission, WARM_UP))
        committed = commit_observations(mission, OBSERVATIONS)
        wait_for(listeners, committed)
        publisher_flush()
        print(
            f"observation committed -> WebSocket client, {OBSERVATIONS} observations, "
            f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, channel layer "
            f"{settings.CHANNEL_LAYER_URL.split('://')[0]}, polling every "
            f"{settings.STUDIOX_LIVE_POLL_SECONDS} s as a fallback"
        )
        medians = [
            report("mission stream", committed, listeners[0].arrived),
            report("rail stream", committed, listeners[1].arrived),
        ]
        worst = max((m for m in medians if m is not None), default=float("inf"))
        verdict = "met" if worst <= TARGET_MEDIAN_MS else "NOT met"
        print(f"SPEC target: median ≤ {TARGET_MEDIAN_MS:.0f} ms -> {verdict}")
    finally:
        for listener in listeners:
            listener.stop.set()
        for listener in listeners:
            listener.thread.join(timeout=5)
        web.terminate()
        try:
            web.wait(timeout=10)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
        mission.delete()


if __name__ == "__main__":
    main()
