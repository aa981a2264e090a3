"""Where the MCP client finds a server, what a spawned server sees, and how failures read.

`probe` is a real MCP server written to tmp_path and spawned over stdio: it reports its
environment and the request's `_meta`, answers in plain text, or sleeps.
"""

import json
import sqlite3
import sys

import pytest

from integrations.mcp_client import ToolRefusedError, ToolTransportError, call_tool
from missions.mcp_models import McpServer

pytestmark = pytest.mark.django_db

PROBE = """
import json, os, time
from typing import Any
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("probe", log_level="WARNING")

def environment() -> dict[str, Any]:
    return {"names": sorted(os.environ)}

def meta(ctx: Context) -> dict[str, Any]:
    return {"meta": dict(ctx.request_context.meta or {})}

def plain_json() -> str:
    return json.dumps({"answer": 42})

def nap(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}

server.add_tool(environment)
server.add_tool(meta)
server.add_tool(plain_json, structured_output=False)
server.add_tool(nap)
server.run("stdio")
"""


@pytest.fixture
def probe(tmp_path, settings):
    """Registers the probe server as "probe" in the setting; returns a function to change it."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)

    def configure(**extra) -> None:
        settings.STUDIOX_MCP_SERVERS = {
            "probe": {"transport": "stdio", "command": [sys.executable, str(script)], **extra}
        }

    configure()
    return configure


def demo_server(ledger, paid) -> dict:
    return {
        "transport": "stdio",
        "command": [sys.executable, "-m", "demo_payments"],
        "env": {"DEMO_PAYMENTS_LEDGER": str(ledger), "DEMO_PAYMENTS_PAID": str(paid)},
    }


@pytest.fixture
def paid(tmp_path):
    path = tmp_path / "paid.json"
    path.write_text(json.dumps({"A-1001": "120.00"}))
    return path


def refund(server: str, key: str = "k-1") -> dict:
    return call_tool(
        server=server,
        tool="issue_refund",
        arguments={"order_id": "A-1001", "amount": "5.00"},
        idempotency_key=key,
    )


def refund_keys(ledger) -> list[str]:
    if not ledger.exists():
        return []
    with sqlite3.connect(ledger) as db:
        return [key for (key,) in db.execute("SELECT idempotency_key FROM refunds ORDER BY id")]


def test_an_unknown_server_is_refused():
    with pytest.raises(ToolRefusedError) as refused:
        refund("nowhere")

    assert str(refused.value) == "unknown MCP server 'nowhere'"


def test_an_admin_row_configures_a_server(tmp_path, paid):
    ledger = tmp_path / "admin.sqlite3"
    McpServer.objects.create(name="ledger-admin", **demo_server(ledger, paid))

    assert refund("ledger-admin")["duplicate"] is False
    assert refund_keys(ledger) == ["k-1"]


def test_an_enabled_row_wins_over_the_setting_and_a_disabled_one_does_not(tmp_path, paid, settings):
    from_setting, from_row = tmp_path / "setting.sqlite3", tmp_path / "row.sqlite3"
    settings.STUDIOX_MCP_SERVERS = {"payments": demo_server(from_setting, paid)}
    row = McpServer.objects.create(name="payments", **demo_server(from_row, paid))

    refund("payments", key="while-enabled")
    row.enabled = False
    row.save()
    refund("payments", key="while-disabled")

    assert refund_keys(from_row) == ["while-enabled"]
    assert refund_keys(from_setting) == ["while-disabled"]


def test_the_builtin_payments_server_needs_no_set_up(tmp_path, paid, settings, monkeypatch):
    settings.STUDIOX_MCP_SERVERS = {}
    ledger = tmp_path / "builtin.sqlite3"
    monkeypatch.setenv("DEMO_PAYMENTS_LEDGER", str(ledger))  # passed through to the child
    monkeypatch.setenv("DEMO_PAYMENTS_PAID", str(paid))

    assert refund("payments")["amount"] == "5.00"
    assert refund_keys(ledger) == ["k-1"]


def test_the_builtin_server_keeps_its_ledger_in_the_var_dir(tmp_path, paid, settings, monkeypatch):
    settings.STUDIOX_MCP_SERVERS = {}
    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.delenv("DEMO_PAYMENTS_LEDGER", raising=False)
    monkeypatch.setenv("DEMO_PAYMENTS_PAID", str(paid))

    refund("payments")

    assert refund_keys(tmp_path / "var" / "payments-ledger.sqlite3") == ["k-1"]


def test_a_spawned_server_sees_no_secrets_but_its_own_env(probe, monkeypatch):
    for secret in ("STUDIOX_SECRET_KEY", "STUDIOX_LLM_API_KEY", "DATABASE_URL"):
        monkeypatch.setenv(secret, "do-not-leak")
    probe(env={"PROBE_SETTING": "on"})

    names = call_tool(server="probe", tool="environment", arguments={}, idempotency_key="k")

    assert {"PATH", "PROBE_SETTING", "STUDIOX_VAR_DIR"} <= set(names["names"])
    assert not {"STUDIOX_SECRET_KEY", "STUDIOX_LLM_API_KEY", "DATABASE_URL"} & set(names["names"])


def test_the_idempotency_key_travels_in_the_request_meta(probe):
    answer = call_tool(server="probe", tool="meta", arguments={}, idempotency_key="step-key-7")

    assert answer["meta"]["idempotency_key"] == "step-key-7"


def test_a_json_text_answer_is_parsed(probe):
    assert call_tool(server="probe", tool="plain_json", arguments={}, idempotency_key="k") == {
        "answer": 42
    }


def test_a_tool_slower_than_the_timeout_is_a_transport_error(probe):
    probe(timeout_seconds=1)

    with pytest.raises(ToolTransportError, match="did not answer within 1 s"):
        call_tool(server="probe", tool="nap", arguments={"seconds": 60}, idempotency_key="k")


def test_a_command_that_cannot_start_is_a_transport_error(settings, tmp_path):
    missing = str(tmp_path / "no-such-server")
    settings.STUDIOX_MCP_SERVERS = {"ghost": {"transport": "stdio", "command": [missing]}}

    with pytest.raises(ToolTransportError, match="could not be started"):
        refund("ghost")


def test_a_server_that_dies_is_a_transport_error_with_its_stderr(settings):
    crash = "import sys; sys.stderr.write('ledger unavailable'); sys.exit(3)"
    settings.STUDIOX_MCP_SERVERS = {
        "crashing": {"transport": "stdio", "command": [sys.executable, "-c", crash]}
    }

    with pytest.raises(ToolTransportError, match="ledger unavailable"):
        refund("crashing")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"transport": "stdio"}, "stdio needs a command"),
        ({"transport": "stdio", "command": "python -m x"}, "stdio needs a command"),
        ({"transport": "http", "url": "ftp://x"}, "http needs a url"),
        ({"transport": "carrier-pigeon"}, "transport must be 'stdio' or 'http'"),
        ({"transport": "http", "url": "http://x", "timeout_seconds": 0}, "timeout_seconds must be"),
    ],
)
def test_a_misconfigured_server_is_refused(settings, config, problem):
    settings.STUDIOX_MCP_SERVERS = {"broken": config}

    with pytest.raises(ToolRefusedError) as refused:
        refund("broken")

    assert str(refused.value).startswith(
        f"MCP server 'broken' (settings) is misconfigured: {problem}"
    )
