"""Live processes for end-to-end tests as pytest fixtures: web servers (uvicorn, HTTP +
WebSockets) and a Celery worker, run against the test database (its settings reach them
through DATABASE_URL, see `tests.support.processes.process_env`). Loopback only; each
process is stopped by its pid when the test ends.

tests/conftest.py offers these fixtures to every test. Mark the test
`@pytest.mark.django_db(transaction=True)`, so that the processes see the rows it writes.
`STUDIOX_MISSION_MODULES` of the test run (tests.missions_for_tests by default, see
pyproject.toml) is passed on; give other modules through `env`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Processes, WebServer


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
    processes.worker_ready(worker)
    return worker
