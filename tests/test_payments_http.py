"""The demo payments server over streamable HTTP on loopback, called through the MCP client."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from integrations.mcp_client import ToolRefusedError, ToolTransportError, call_tool, list_tools
from tests.support.network import free_port
from tests.support.processes import ROOT, stop, wait_until_listening

pytestmark = pytest.mark.django_db


@pytest.fixture
def http_server(tmp_path, settings):
    """`python -m demo_payments --http` on a free loopback port, known as "payments-http";
    stopped by pid at the end. Yields the ledger's path."""
    ledger = tmp_path / "ledger.sqlite3"
    paid = tmp_path / "paid.json"
    paid.write_text(json.dumps({"A-1001": "120.00"}))
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        "PATH": os.environ["PATH"],
        "DEMO_PAYMENTS_LEDGER": str(ledger),
        "DEMO_PAYMENTS_PAID": str(paid),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo_payments.server", "--http", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log)
        settings.STUDIOX_MCP_SERVERS = {
            "payments-http": {"transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}
        }
        yield ledger
    finally:
        stop(process)


def refund(amount: str, key: str) -> dict:
    return call_tool(
        server="payments-http",
        tool="issue_refund",
        arguments={"order_id": "A-1001", "amount": amount},
        idempotency_key=key,
    )


def test_a_retried_refund_over_http_pays_once(http_server):
    first = refund("30.00", "step-key-1")
    again = refund("30.00", "step-key-1")

    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["refund_id"] == first["refund_id"]
    with sqlite3.connect(http_server) as db:
        assert db.execute("SELECT COUNT(*) FROM refunds").fetchone()[0] == 1


def test_over_http_a_refund_above_the_payment_is_refused_and_totals_add_up(http_server):
    refund("100.00", "k-1")

    with pytest.raises(ToolRefusedError, match=r"at most 20\.00 can be refunded"):
        refund("50.00", "k-2")

    totals = call_tool(
        server="payments-http",
        tool="lookup_refunds",
        arguments={"order_id": "A-1001"},
        idempotency_key="lookup",
    )
    assert (totals["paid"], totals["refunded"], totals["refundable"]) == (
        "120.00",
        "100.00",
        "20.00",
    )


def test_the_tool_listing_shows_the_idempotency_key_argument(http_server):
    tools = {tool["name"]: tool for tool in list_tools(server="payments-http")}

    assert set(tools) == {"issue_refund", "lookup_refunds"}
    assert tools["issue_refund"]["input_schema"]["required"] == [
        "order_id",
        "amount",
        "idempotency_key",
    ]


def test_a_server_that_is_not_running_is_a_transport_error(settings):
    settings.STUDIOX_MCP_SERVERS = {
        "payments-http": {
            "transport": "http",
            "url": f"http://127.0.0.1:{free_port()}/mcp",
            "timeout_seconds": 10,
        },
    }

    with pytest.raises(ToolTransportError, match="MCP server 'payments-http' failed"):
        refund("1.00", "k-1")
