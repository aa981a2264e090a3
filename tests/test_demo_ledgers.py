"""The bundled demo ledgers server, a real child process speaking MCP: spawned over stdio (how
StudioX calls it) and served over streamable HTTP, called through the MCP client.

Each test has its own SQLite file and, where it says so, its own data file under tmp_path.
"""

import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from django.db import connection

from integrations.mcp_client import ToolRefusedError, call_tool, list_tools, server_config
from tests.support.network import free_port
from tests.support.processes import ROOT, stop, wait_until_listening

pytestmark = pytest.mark.django_db

DATA = {
    "currency": "EUR",
    "systems": {
        "bank": {
            "name": "Bank",
            "quarters": {
                "2026-Q3": {"1010 Operating account": "482310.55", "1020 Savings": "150000.00"}
            },
        },
        "crm": {"name": "CRM", "quarters": {"2026-Q3": {"1220 Customer credits": "12650.00"}}},
    },
}
MEMO = "2026-Q3 reconciliation with the general ledger"


@pytest.fixture
def ledgers(tmp_path, settings):
    """The "ledgers" server over stdio with a fresh SQLite file; yields the file's path."""
    path = tmp_path / "ledgers.sqlite3"
    data = tmp_path / "balances.json"
    data.write_text(json.dumps(DATA))
    settings.STUDIOX_MCP_SERVERS = {
        "ledgers": {
            "transport": "stdio",
            "command": [sys.executable, "-m", "demo_ledgers"],
            "env": {"DEMO_LEDGERS_DB": str(path), "DEMO_LEDGERS_DATA": str(data)},
        }
    }
    return path


def post(key: str, *, amount: str = "1250.00", account: str = "1010 Operating account", **kw):
    arguments = {"system": "bank", "quarter": "2026-Q3", "account": account, "amount": amount}
    return call_tool(
        server=kw.pop("server", "ledgers"),
        tool="post_adjusting_entry",
        arguments={**arguments, "memo": MEMO, **kw},
        idempotency_key=key,
    )


def balances(system: str = "bank", quarter: str = "2026-Q3", server: str = "ledgers") -> dict:
    return call_tool(
        server=server,
        tool="read_balances",
        arguments={"system": system, "quarter": quarter},
        idempotency_key="read",
    )


def entries(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT idempotency_key, system, account, amount_cents FROM entries ORDER BY id"
        ).fetchall()


def test_read_balances_reports_each_account_and_the_total(ledgers):
    bank = balances()

    assert (bank["name"], bank["currency"], bank["total"]) == ("Bank", "EUR", "632310.55")
    assert bank["accounts"] == [
        {
            "account": "1010 Operating account",
            "recorded": "482310.55",
            "adjustments": "0.00",
            "balance": "482310.55",
        },
        {
            "account": "1020 Savings",
            "recorded": "150000.00",
            "adjustments": "0.00",
            "balance": "150000.00",
        },
    ]
    assert bank["entries"] == []


def test_a_repeated_key_returns_the_original_entry_and_posts_once(ledgers):
    first = post("step-key-1")
    again = post("step-key-1")

    assert first["idempotency_key"] == "step-key-1"  # the caller's key reached the tool
    assert (first["duplicate"], first["amount"], first["entry_id"]) == (
        False,
        "1250.00",
        "AJE-000001",
    )
    assert again == {**first, "duplicate": True}
    assert entries(ledgers) == [("step-key-1", "bank", "1010 Operating account", 125000)]
    bank = balances()
    assert bank["accounts"][0]["balance"] == "483560.55"  # adjusted once, not twice
    assert bank["total"] == "633560.55"
    assert [e["entry_id"] for e in bank["entries"]] == ["AJE-000001"]


def test_a_negative_entry_decreases_the_account(ledgers):
    post("k-1", amount="-42.50", account="1020 Savings")

    assert balances()["accounts"][1]["balance"] == "149957.50"


def test_a_key_reused_for_a_different_entry_is_refused(ledgers):
    post("k-1", amount="10.00")

    with pytest.raises(ToolRefusedError, match=r"already used for an entry of 10\.00 EUR"):
        post("k-1", amount="11.00")

    assert entries(ledgers) == [("k-1", "bank", "1010 Operating account", 1000)]


def test_an_unknown_system_is_refused_with_the_systems_it_knows(ledgers):
    with pytest.raises(ToolRefusedError) as refused:
        balances(system="mainframe")

    assert str(refused.value) == "unknown system 'mainframe'; the systems: bank, crm"
    with pytest.raises(ToolRefusedError, match="unknown system 'mainframe'"):
        post("k-1", system="mainframe")
    assert entries(ledgers) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quarter": "2025-Q4"}, "no balances for bank in '2025-Q4'; its quarters: 2026-Q3"),
        ({"account": "9999 Nope"}, "bank has no account '9999 Nope' in 2026-Q3; its accounts: "),
        ({"amount": "0"}, "amount must not be 0"),
        ({"amount": "1.005"}, "has more than two decimals"),
        ({"amount": "ten"}, "is not a number"),
        ({"amount": "NaN"}, "must be a finite amount"),
        ({"amount": "1e20"}, "is beyond"),
        ({"memo": "  "}, "memo must be 1 to 500 characters"),
    ],
)
def test_it_refuses_entries_it_cannot_post(ledgers, changes, message):
    with pytest.raises(ToolRefusedError, match=message):
        post("k-1", **changes)

    assert entries(ledgers) == []


@pytest.mark.django_db(transaction=True)
def test_two_servers_posting_with_the_same_key_post_once(ledgers):
    """Two server processes share the file; the UNIQUE key decides which one posts."""
    results: list[dict] = []

    def attempt() -> None:
        try:
            results.append(post("same-key"))
        finally:
            connection.close()  # this thread's own database connection

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r["duplicate"] for r in results) == [False, True]
    assert len(entries(ledgers)) == 1


def test_the_builtin_server_serves_the_bundled_demo_systems(tmp_path, settings, monkeypatch):
    """No configuration: `ledgers` spawns `python -m demo_ledgers` with its file in the var dir."""
    settings.STUDIOX_MCP_SERVERS = {}
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_LEDGERS_DB", raising=False)
    monkeypatch.delenv("DEMO_LEDGERS_DATA", raising=False)

    assert server_config("ledgers").source == "built-in"
    bank = balances()
    assert bank["accounts"][0] == {
        "account": "1010 Operating account",
        "recorded": "482310.55",
        "adjustments": "0.00",
        "balance": "482310.55",
    }
    with pytest.raises(ToolRefusedError) as refused:
        balances(system="nope")
    assert str(refused.value) == (
        "unknown system 'nope'; the systems: bank, billing, card_processor, crm, erp, "
        "expenses, fixed_assets, inventory, payroll, procurement, tax, treasury"
    )
    assert (tmp_path / "ledgers.sqlite3").exists()


def test_the_tool_listing_shows_the_idempotency_key_argument(ledgers):
    tools = {tool["name"]: tool for tool in list_tools(server="ledgers")}

    assert set(tools) == {"read_balances", "post_adjusting_entry"}
    assert tools["post_adjusting_entry"]["input_schema"]["required"] == [
        "system",
        "quarter",
        "account",
        "amount",
        "memo",
        "idempotency_key",
    ]


@pytest.fixture
def http_ledgers(tmp_path, settings):
    """`python -m demo_ledgers --http` on a free loopback port, known as "ledgers-http";
    stopped by pid at the end. Yields the SQLite file's path."""
    path = tmp_path / "ledgers.sqlite3"
    data = tmp_path / "balances.json"
    data.write_text(json.dumps(DATA))
    port = free_port()
    log = tmp_path / "server.log"
    env = {"PATH": os.environ["PATH"], "DEMO_LEDGERS_DB": str(path), "DEMO_LEDGERS_DATA": str(data)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo_ledgers", "--http", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log)
        settings.STUDIOX_MCP_SERVERS = {
            "ledgers-http": {"transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}
        }
        yield path
    finally:
        stop(process)


def test_over_http_a_retried_entry_posts_once(http_ledgers):
    first = post("step-key-1", server="ledgers-http")
    again = post("step-key-1", server="ledgers-http")

    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["entry_id"] == first["entry_id"]
    assert len(entries(http_ledgers)) == 1
    assert balances(server="ledgers-http")["accounts"][0]["adjustments"] == "1250.00"
    with pytest.raises(ToolRefusedError, match="unknown system 'nope'"):
        balances(system="nope", server="ledgers-http")
