"""Real Celery worker and scheduler processes against the test database."""

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

ROOT = Path(__file__).resolve().parent.parent
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
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def eventually(check: Callable[[], object], *, what: str, attempts: int = 600, pause: float = 0.1):
    """Poll `check` until it returns something truthy; fail naming `what` after `attempts`."""
    for _ in range(attempts):
        result = check()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what}")
