"""Start the whole embedded StudioX in one command: ASGI server, a worker and the scheduler."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def process_env(host: str, port: int) -> dict[str, str]:
    """Links in notification e-mails point where this server listens, unless set."""
    env = dict(os.environ)
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    env.setdefault("STUDIOX_BASE_URL", f"http://{reachable}:{port}")
    return env


def process_commands(host: str, port: int, concurrency: int) -> dict[str, list[str]]:
    python = sys.executable
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return {
        "web": [python, "-m", "uvicorn", "studiox.asgi:application", "--host", host,
                "--port", str(port), "--no-access-log"],
        # --quiet: no banner (configuration, task list); the log still says when it is ready.
        "worker": [python, "-m", "celery", "-A", "studiox", "--quiet", "worker", "-Q", queue,
                   "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", "studiox@%h"],
        "scheduler": [python, "-m", "celery", "-A", "studiox", "--quiet", "beat",
                      "--loglevel", "INFO", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
    }  # fmt: skip


class Command(BaseCommand):
    help = "Run the web server (HTTP and WebSockets), a worker and the scheduler until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, host, port, concurrency, **options):
        env = process_env(host, port)
        processes = {
            name: subprocess.Popen(command, env=env)
            for name, command in process_commands(host, port, concurrency).items()
        }
        self.stdout.write(self.style.SUCCESS(f"StudioX is running at http://{host}:{port}/"))
        self.stdout.write("Press Ctrl-C to stop the web server, the worker and the scheduler.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; stopping.")
                    exit_code, stopping = 1, True
            time.sleep(0.2)
        self._stop_all(processes)
        sys.exit(exit_code)

    def _stop_all(self, processes: dict[str, subprocess.Popen]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        self.stdout.write("Stopped.")
