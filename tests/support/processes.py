"""Real Celery worker, scheduler and web server processes against the test database.
Loopback only; every process is stopped by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.support.network import free_port, listening

ROOT = Path(__file__).resolve().parents[2]
FAST_ENGINE = {"STUDIOX_LEASE_SECONDS": "3", "STUDIOX_TICK_SECONDS": "0.5"}


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **FAST_ENGINE, "DATABASE_URL": test_database_url(), **extra}
    env["STUDIOX_VAR_DIR"] = str(settings.VAR_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def eventually(check: Callable[[], object], *, what: str, attempts: int = 600, pause: float = 0.1):
    """Poll `check` until it returns something truthy; fail naming `what` after `attempts`."""
    for _ in range(attempts):
        result = check()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    """Terminate, and kill if it does not exit within ten seconds."""
    if process.poll() is None:
        process.terminate()
    reap(process)


def reap(process: subprocess.Popen) -> None:
    """Wait for a process asked to exit; kill it after ten seconds."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(log: Path, size: int = 4000) -> str:
    return log.read_text()[-size:] if log.exists() else ""


def wait_until_listening(process: subprocess.Popen, port: int, log: Path, attempts=300) -> None:
    """Wait for a server process to accept connections; fail with its log if it exits."""

    def accepting() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited:\n{tail(log)}")
        return listening(port)

    try:
        eventually(accepting, what=f"a listener on port {port}", attempts=attempts)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; its log:\n{tail(log)}") from None


class Processes:
    """Starts worker/scheduler processes and stops every one of them by pid at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}-{len(self.running)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studiox", *args],
            cwd=ROOT,
            env=process_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append(process)
        return process

    def worker(self, name: str = "w", **env: str) -> subprocess.Popen:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        return self._spawn(
            name,
            [
                "worker",
                "-Q",
                queue,
                "--pool=solo",
                "-n",
                f"{name}-{time.monotonic_ns()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            **env,
        )

    def scheduler(self, **env: str) -> subprocess.Popen:
        schedule = self.log_dir / f"beat-{time.monotonic_ns()}"
        return self._spawn("beat", ["beat", "--schedule", str(schedule), "--loglevel=INFO"], **env)

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        # Every process is asked to exit before any is waited for: they shut down together.
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            reap(process)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def worker_ready(self, process: subprocess.Popen, *, attempts: int = 600) -> None:
        """Wait until a worker started here consumes its queue (Celery logs "ready.")."""
        log = next(self.log_dir.glob(f"*-{self.running.index(process)}.log"))

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
            return " ready." in log.read_text()

        eventually(ready, what=f"worker {process.pid} to be ready", attempts=attempts)


class WebServer:
    """uvicorn serving studiox.asgi (HTTP + WebSockets) on 127.0.0.1; `url` once `start()`
    returned."""

    def __init__(self, log_dir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"uvicorn-{self.port}.log"
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, attempts: int = 300) -> WebServer:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "studiox.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                    "--lifespan",
                    "off",
                ],
                cwd=ROOT,
                env=process_env(**self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_listening(self.process, self.port, self.log_path, attempts=attempts)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def log(self) -> str:
        return tail(self.log_path)
