"""README's commands, replayed as a person pastes them: `bin/studiox` runs (on a free loopback
port, with a var dir of its own, against the test database), and the shell blocks of the
Operating and API sections run one after the other in a new terminal: `env -i` bash with only
HOME, PATH, the var dir and, on PostgreSQL + Redis, the three service URLs (what an operator's
environment holds). No secret key is given: `manage.py` must find the one `bin/studiox` keeps.

The shell runs with `set -euo pipefail` and curl answers 4xx/5xx as failures, so a command
that fails, a variable an example uses without setting, or a request the API refuses fails
the test with the block and the shell's output. Between blocks the test waits where a person
would look first (the decision open before deciding it)."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from django.conf import settings

from decisions.models import Decision
from missions.models import Mission
from studiox.management.commands import serve
from tests.support.network import free_port
from tests.support.processes import (
    FAST_ENGINE,
    ROOT,
    eventually,
    reap,
    tail,
    wait_until_listening,
)
from tests.support.processes import test_database_url as database_url

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

README = ROOT / "README.md"
README_ADDRESS = "http://127.0.0.1:8000"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DONE = "__readme_block_done__"
MCP_STDIO = "STUDIOX_MCP_TOKEN=$TOKEN python manage.py mcp_stdio"
# An MCP client's first message; the answer names the server (the token was accepted).
MCP_INITIALIZE = (
    '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": '
    '"2025-03-26", "capabilities": {}, "clientInfo": {"name": "readme", "version": "1"}}}'
)


def section(text: str, heading: str) -> str:
    """The README section under `## heading`, up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def shell_blocks(text: str) -> list[str]:
    """The ```sh blocks of `text`, list items' indentation removed."""
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", text, flags=re.S | re.M)
    return ["\n".join(line[len(indent) :] for line in body.splitlines()) for indent, body in blocks]


def installation_env(var_dir: Path) -> dict[str, str]:
    """What a terminal on this installation holds: no secret key, no virtualenv."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": SYSTEM_PATH}
    env["STUDIOX_VAR_DIR"] = str(var_dir)
    env["DATABASE_URL"] = database_url()
    if settings.BROKER_URL.startswith("redis://"):
        env["STUDIOX_BROKER_URL"] = settings.BROKER_URL
    if settings.CHANNEL_LAYER_URL.startswith("redis://"):
        env["STUDIOX_CHANNEL_LAYER_URL"] = settings.CHANNEL_LAYER_URL
    return env


class Terminal:
    """One bash, fed README blocks on stdin like a paste; its output is kept."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            ["env", "-i", *(f"{key}={value}" for key, value in env.items()), "bash",
             "--noprofile", "--norc"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        # Every failure stops the shell; curl's 4xx/5xx count as failures (body still shown).
        self.run(
            "set -euo pipefail\n"
            'curl() { command curl --fail-with-body "$@"; }\n'
            "trap 'echo \"failed: $BASH_COMMAND\"' ERR"
        )

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, block: str, timeout: float = 120) -> str:
        # The marker on a line of its own, also after an answer without a final newline.
        self.process.stdin.write(f"{block}\nprintf '\\n%s\\n' {DONE}\n")
        self.process.stdin.flush()
        answer: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no end of this block within {timeout} s:\n{block}\n{''.join(answer)}")
            if line is None:
                pytest.fail(
                    f"this README block failed:\n{block}\n--- its output:\n{''.join(answer)}"
                )
            if line.strip() == DONE:
                self.output.append("".join(answer))
                return "".join(answer)
            answer.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
        reap(self.process)


@pytest.fixture
def studiox(tmp_path):
    """`bin/studiox --port P`, as README's first command, stopped by its pid (Ctrl-C)."""
    var_dir = tmp_path / "var"
    port = free_port()
    log_path = tmp_path / "studiox.log"
    env = {**installation_env(var_dir), **FAST_ENGINE, "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["env", "-i", *(f"{key}={value}" for key, value in env.items()),
             str(ROOT / "bin" / "studiox"), "--port", str(port), "--concurrency", "1"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_listening(process, port, log_path, attempts=1800)
        yield var_dir, port, log_path
    finally:
        stop_studiox(process)


def stop_studiox(process: subprocess.Popen) -> None:
    """Ctrl-C, as a person stops it; its process group (only what it started) is killed if
    it has not stopped within a minute."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def terminal(studiox):
    var_dir, _, _ = studiox
    shell = Terminal(installation_env(var_dir))
    yield shell
    shell.close()


def readme() -> str:
    return README.read_text()


def test_on_another_port_e_mails_link_there(monkeypatch):
    """README: `bin/studiox --port 8001` needs nothing else for links to point there."""
    monkeypatch.delenv("STUDIOX_BASE_URL", raising=False)
    assert serve.process_env("127.0.0.1", 8001)["STUDIOX_BASE_URL"] == "http://127.0.0.1:8001"
    monkeypatch.setenv("STUDIOX_BASE_URL", "https://studiox.example.com")
    assert serve.process_env("0.0.0.0", 8001)["STUDIOX_BASE_URL"] == "https://studiox.example.com"


def test_readme_blocks_are_found():
    """The replay below runs what it finds: it must find the commands it is about."""
    operating = shell_blocks(section(readme(), "Operating"))
    api = shell_blocks(section(readme(), "API"))
    assert any("manage.py missions_stuck" in block for block in operating)
    assert any("create_api_token requester" in block for block in api)
    assert any("/events/" in block for block in api)
    assert any("/decide/" in block for block in api)
    assert MCP_STDIO in section(readme(), "API")


def test_readme_operating_and_api_commands_work_in_a_new_terminal(studiox, terminal):
    _, port, log_path = studiox
    for block in shell_blocks(section(readme(), "Operating")):
        terminal.run(block)
    assert Mission.objects.filter(type="delivery_confirmation", input__order_id="A-1002").exists()

    for block in shell_blocks(section(readme(), "API")):
        block = block.replace(README_ADDRESS, f"http://127.0.0.1:{port}")
        if "/decide/" in block:  # a person decides once the mission asks
            eventually(
                lambda: Decision.objects.filter(
                    mission__idempotency_key="refund-A-1001", status=Decision.Status.PENDING
                ).exists(),
                what=f"the refund's decision; server log:\n{tail(log_path)}",
                attempts=1200,
            )
        terminal.run(block)

    refund = Mission.objects.get(idempotency_key="refund-A-1001")
    assert refund.decisions.get().outcome == "approved"
    delivery = Mission.objects.get(idempotency_key="delivery-A-1001")
    delivered = eventually(
        lambda: Mission.objects.filter(id=delivery.id, status=Mission.Status.SUCCEEDED).first(),
        what=f"the delivery confirmation's verdict; server log:\n{tail(log_path)}",
        attempts=1200,
    )
    assert delivered.verdict["outcome"] == "delivered"
    assert "DHL" in delivered.verdict["summary"]
    late = Mission.objects.filter(input__order_id="A-1007", type="delivery_confirmation").get()
    assert late.status == Mission.Status.CANCELLED

    # What bin/studiox's console showed meanwhile: one line per e-mail, no start-up warnings
    # (lifespan, a static file streamed synchronously), nothing logged as a redirected print.
    terminal.run(f"curl -s -o /dev/null http://127.0.0.1:{port}/static/studiox/app.css")
    console = log_path.read_text()
    assert (
        "INFO studiox.mail E-mail to supervisor@studiox.local: [StudioX] Decision needed" in console
    )
    for noise in ("lifespan", "StreamingHttpResponse", "celery.redirected", "Content-Type:"):
        assert noise not in console, f"{noise!r} on the console:\n{console}"

    # An MCP client launches README's stdio command in the same kind of terminal.
    answer = terminal.run(f"echo {shlex.quote(MCP_INITIALIZE)} | {MCP_STDIO}")
    assert '"serverInfo":{"name":"studiox"' in answer, answer
