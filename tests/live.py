"""Live processes for end-to-end tests, as reusable pytest fixtures: a web server (uvicorn,
HTTP + WebSockets) and Celery workers, run against the test database (its settings are passed
through DATABASE_URL, see tests.workers.process_env). Loopback only; each process is stopped
by its pid when the test ends.

Use them from a conftest.py (pytest finds fixtures there, not in this module):

    from tests.live import live_web, live_web_factory, live_worker  # noqa: F401

and mark the test `@pytest.mark.django_db(transaction=True)`, so that the processes see the
rows the test writes. `STUDIOX_MISSION_MODULES` of the test run (tests.missions_for_tests by
default, see pyproject.toml) is passed on; give other modules through `env`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live_rail import BROWSER_ARGS, CHROMIUM, WebServer, free_port
from tests.workers import Processes, eventually, process_env, test_database_url

__all__ = [
    "BROWSER_ARGS",
    "CHROMIUM",
    "WebServer",
    "free_port",
    "live_web",
    "live_web_factory",
    "live_worker",
    "process_env",
    "test_database_url",
    "wait_until",
    "worker_ready",
]

wait_until = eventually  # poll a condition with a bounded number of attempts, never a clock


def worker_ready(processes: Processes, process: subprocess.Popen, *, attempts: int = 600) -> None:
    """Wait until a worker started by `processes` consumes its queue (Celery logs "ready.")."""
    index = processes.running.index(process)
    log = next(processes.log_dir.glob(f"*-{index}.log"))

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
        return " ready." in log.read_text()

    wait_until(ready, what=f"worker {process.pid} to be ready", attempts=attempts)


@pytest.fixture
def live_web_factory(tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    """`start(**env)` runs one more uvicorn on a free port and returns it listening (its
    `.url`, `.log()`); all of them are stopped when the test ends."""
    servers: list[WebServer] = []

    def start(**env: str) -> WebServer:
        server = WebServer(tmp_path, **env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_web(live_web_factory) -> WebServer:
    """One web server with the test run's settings."""
    return live_web_factory()


@pytest.fixture
def live_worker(processes: Processes) -> subprocess.Popen:
    """One Celery worker (solo pool) on the project's queue, ready before the test goes on."""
    worker = processes.worker()
    worker_ready(processes, worker)
    return worker
