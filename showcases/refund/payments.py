"""The refund's view of the payments system, its system of record for money.

What an order paid and what was refunded come from the payments MCP server's read tool
(`lookup_refunds`), never from the knowledge record, which is a copy and goes stale as soon
as a refund is paid. A read carries the time it was made; the approvers' evidence names it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from integrations import mcp_client
from knowledge.selectors import knowledge_record

SERVER = "payments"
READ_TOOL = "lookup_refunds"
PAY_TOOL = "issue_refund"


def read_source(read: dict) -> str:
    """Where a read's figures come from, for the approvers: "payments, read at 2026-12-01
    14:02 UTC" (a read without a time is the knowledge record's copy)."""
    read_at = read.get("read_at")
    if not read_at:
        return "knowledge record"
    when = datetime.fromisoformat(read_at)
    return f"payments, read at {when:%Y-%m-%d %H:%M} UTC"


def read_from_knowledge(payment: dict | None) -> dict | None:
    """A knowledge payment record in a read's shape (for missions of version 1)."""
    if payment is None:
        return None
    paid = Decimal(str(payment.get("amount", "0")))
    refunded = Decimal(str(payment.get("refunded_amount") or "0"))
    return {
        "order_id": payment.get("order_id", ""),
        "currency": payment.get("currency", "EUR"),
        "paid": str(paid),
        "refunded": str(refunded),
        "refundable": str(paid - refunded),
        "refunds": [],
    }


def refund_line(refund: dict) -> str:
    """ "42.00 refunded on 2026-12-01 by RF-000001"."""
    return f"{refund['amount']} refunded on {refund['created_at'][:10]} by {refund['refund_id']}"


def figures_line(read: dict) -> str:
    """What an order paid, what was refunded (each refund with its date) and what is left."""
    currency = read["currency"]
    refunds = "; ".join(refund_line(r) for r in read["refunds"])
    return (
        f"paid {read['paid']} {currency} · refunded {read['refunded']} {currency}"
        f"{f' ({refunds})' if refunds else ''} · {read['refundable']} {currency} left to refund"
    )


def shortfall(read: dict, *, amount: str, earlier: dict) -> str | None:
    """Why `amount` can no longer be refunded according to the fresh `read`, naming the
    refunds made since `earlier` (the read the approvers saw); None when it still fits."""
    if Decimal(amount) <= Decimal(read["refundable"]):
        return None
    seen = {r["refund_id"] for r in earlier["refunds"]}
    since = [r for r in read["refunds"] if r["refund_id"] not in seen] or read["refunds"]
    taken = "; ".join(refund_line(r) for r in since)
    return (
        f"{read['order_id']} has only {read['refundable']} {read['currency']} left to refund"
        f"{f' ({taken})' if taken else ''} — the approval was for {amount} {read['currency']}"
    )


def pay_refund(*, order_id: str, amount: str, currency: str, idempotency_key: str) -> dict:
    """Pay through the payments system, once per key: {"refund": ...}, or {"refused": why}
    when the ledger says no (another refund took what was left). The refusal is an answer
    the mission turns into a verdict; a server that cannot be reached still raises, so the
    step retries."""
    try:
        refund = mcp_client.call_tool(
            server=SERVER,
            tool=PAY_TOOL,
            arguments={"order_id": order_id, "amount": amount, "currency": currency},
            idempotency_key=idempotency_key,
        )
    except mcp_client.ToolRefusedError as exc:
        return {"refused": str(exc)}
    return {"refund": refund}


def order_on_record(order_id: str) -> bool:
    """Whether the order book (Enterprise Knowledge) or, failing that, the payments system
    knows `order_id`. Only a clear "no payment on record" from payments counts as unknown:
    when payments cannot be asked, the order gets the benefit of the doubt and the mission
    decides."""
    if knowledge_record("order", order_id) is not None:
        return True
    try:
        mcp_client.call_tool(
            server=SERVER,
            tool=READ_TOOL,
            arguments={"order_id": order_id},
            idempotency_key=f"order-check:{order_id}",
        )
    except mcp_client.ToolRefusedError as exc:
        return "no payment on record" not in str(exc)
    except mcp_client.ToolTransportError:
        return True
    return True
