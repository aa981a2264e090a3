"""The bundled demo payments server, spawned over stdio through the MCP client (docs/operating.md).

Each test has its own ledger and paid amounts under tmp_path; the server is a real child
process speaking MCP, as in production.
"""

import json
import sqlite3
import sys
import threading

import pytest
from django.db import connection

from integrations.mcp_client import ToolRefusedError, call_tool

pytestmark = pytest.mark.django_db

PAID = {"A-1001": "120.00", "A-1002": "89.90"}


@pytest.fixture
def ledger(tmp_path, settings):
    """The "payments" server over stdio with a fresh ledger; yields the ledger's path."""
    path = tmp_path / "ledger.sqlite3"
    paid = tmp_path / "paid.json"
    paid.write_text(json.dumps(PAID))
    settings.STUDIOX_MCP_SERVERS = {
        "payments": {
            "transport": "stdio",
            "command": [sys.executable, "-m", "demo_payments"],
            "env": {"DEMO_PAYMENTS_LEDGER": str(path), "DEMO_PAYMENTS_PAID": str(paid)},
        }
    }
    return path


def refund(order_id: str, amount: str, key: str) -> dict:
    return call_tool(
        server="payments",
        tool="issue_refund",
        arguments={"order_id": order_id, "amount": amount},
        idempotency_key=key,
    )


def ledger_rows(path, order_id: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT idempotency_key, amount_cents FROM refunds WHERE order_id = ? ORDER BY id",
            (order_id,),
        ).fetchall()


def test_a_repeated_key_returns_the_original_refund_and_pays_once(ledger):
    first = refund("A-1001", "42.50", "step-key-1")
    again = refund("A-1001", "42.50", "step-key-1")

    assert first["amount"] == "42.50"
    assert first["idempotency_key"] == "step-key-1"  # the caller's key reached the tool
    assert first["duplicate"] is False
    assert again == {**first, "duplicate": True}
    assert ledger_rows(ledger, "A-1001") == [("step-key-1", 4250)]


def test_it_refuses_a_refund_above_the_payment(ledger):
    refund("A-1001", "100.00", "k-1")

    with pytest.raises(ToolRefusedError) as refused:
        refund("A-1001", "20.01", "k-2")

    assert str(refused.value) == (
        "refund of 20.01 EUR refused: order A-1001 paid 120.00 EUR and 100.00 is already "
        "refunded, so at most 20.00 can be refunded"
    )
    assert ledger_rows(ledger, "A-1001") == [("k-1", 10000)]
    assert refund("A-1001", "20.00", "k-3")["amount"] == "20.00"  # up to the payment is fine


def test_lookup_refunds_totals_an_orders_refunds(ledger):
    refund("A-1002", "10.00", "k-1")
    refund("A-1002", "0.90", "k-2")
    refund("A-1002", "10.00", "k-1")  # a retry, not a third refund

    totals = call_tool(
        server="payments",
        tool="lookup_refunds",
        arguments={"order_id": "A-1002"},
        idempotency_key="lookup-1",
    )

    assert {k: totals[k] for k in ("paid", "refunded", "refundable", "currency")} == {
        "paid": "89.90",
        "refunded": "10.90",
        "refundable": "79.00",
        "currency": "EUR",
    }
    assert [(r["idempotency_key"], r["amount"]) for r in totals["refunds"]] == [
        ("k-1", "10.00"),
        ("k-2", "0.90"),
    ]


def test_a_key_reused_for_a_different_refund_is_refused(ledger):
    refund("A-1001", "10.00", "k-1")

    with pytest.raises(ToolRefusedError, match=r"already used for a refund of 10\.00 EUR"):
        refund("A-1001", "11.00", "k-1")

    assert ledger_rows(ledger, "A-1001") == [("k-1", 1000)]


@pytest.mark.parametrize(
    ("order_id", "amount", "message"),
    [
        ("A-9999", "1.00", "no payment on record for order A-9999"),
        ("A-1001", "0", "amount must be greater than 0"),
        ("A-1001", "-5", "must be a finite amount of at least 0"),
        ("A-1001", "1.005", "has more than two decimals"),
        ("A-1001", "ten", "is not a number"),
    ],
)
def test_it_refuses_refunds_it_cannot_make(ledger, order_id, amount, message):
    with pytest.raises(ToolRefusedError, match=message):
        refund(order_id, amount, "k-1")

    assert ledger_rows(ledger, order_id) == []


@pytest.mark.django_db(transaction=True)
def test_two_servers_racing_for_the_last_euros_pay_only_one(ledger):
    """Two server processes share the ledger; the write lock makes the total check exact."""
    outcomes: list[str] = []

    def attempt(key: str) -> None:
        try:
            refund("A-1001", "70.00", key)
            outcomes.append("paid")
        except ToolRefusedError:
            outcomes.append("refused")
        finally:
            connection.close()  # this thread's own database connection

    threads = [threading.Thread(target=attempt, args=(f"k-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["paid", "refused"]
    assert len(ledger_rows(ledger, "A-1001")) == 1


def test_payments_and_earlier_refunds_come_from_a_records_file(tmp_path, settings):
    """The knowledge app's demo data shape: refunds made before the ledger count too."""
    paid = tmp_path / "payments.json"
    paid.write_text(
        json.dumps(
            {
                "type": "payment",
                "records": [
                    {
                        "id": "P-1",
                        "order_id": "B-1",
                        "currency": "EUR",
                        "amount": "64.50",
                        "refunded_amount": "14.50",
                    },
                ],
            }
        )
    )
    settings.STUDIOX_MCP_SERVERS = {
        "payments": {
            "transport": "stdio",
            "command": [sys.executable, "-m", "demo_payments"],
            "env": {
                "DEMO_PAYMENTS_LEDGER": str(tmp_path / "l.sqlite3"),
                "DEMO_PAYMENTS_PAID": str(paid),
            },
        }
    }

    with pytest.raises(ToolRefusedError, match=r"at most 50\.00 can be refunded"):
        refund("B-1", "50.01", "k-1")
    totals = call_tool(
        server="payments",
        tool="lookup_refunds",
        arguments={"order_id": "B-1"},
        idempotency_key="lookup",
    )

    assert (totals["paid"], totals["refunded"], totals["refundable"]) == ("64.50", "14.50", "50.00")
