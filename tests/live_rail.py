"""A real web server (uvicorn: HTTP + WebSockets) against the test database, for browser
tests; workers come from tests.workers. Loopback only, stopped by pid."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.workers import ROOT, process_env

RAIL_MISSIONS = "tests.missions_for_tests,tests.missions_for_rail"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """uvicorn serving studiox.asgi on 127.0.0.1; `url` once `start()` returned."""

    def __init__(self, log_dir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"uvicorn-{self.port}.log"
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, attempts: int = 300) -> WebServer:
        log = self.log_path.open("w")
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
        for _ in range(attempts):
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"uvicorn did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHROMIUM = "/usr/bin/chromium"
