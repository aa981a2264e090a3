"""The demo payments MCP server: `issue_refund` and `lookup_refunds` over the ledger.

Run it over stdio (how StudioX spawns it by default):

    python -m demo_payments

or over streamable HTTP on loopback, at http://127.0.0.1:N/mcp:

    python -m demo_payments --http --port N

The ledger file is DEMO_PAYMENTS_LEDGER (default: payments-ledger.sqlite3 in STUDIOX_VAR_DIR,
else ./var); what each order paid comes from DEMO_PAYMENTS_PAID (a JSON file), else the
knowledge app's demo payments, else five built-in demo orders.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from demo_payments.ledger import (
    CURRENCY,
    Ledger,
    RefundRefused,
    default_ledger_path,
    payments_on_record,
)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTRUCTIONS = """A demo payments provider. issue_refund refunds part or all of what an order
paid, once per idempotency_key (repeat the key to retry safely: you get the original refund
back, marked duplicate). lookup_refunds shows an order's payment, its refunds and what is
left to refund, with the time of the read (read_at). Amounts are decimal strings such as
"42.50"."""


class RefundRecord(BaseModel):
    refund_id: str
    order_id: str
    amount: str = Field(description="decimal string, e.g. 42.50")
    currency: str
    idempotency_key: str
    created_at: str = Field(description="ISO 8601, UTC")


class Refund(RefundRecord):
    duplicate: bool = Field(description="true when this key was seen before: nothing new paid")


class OrderRefunds(BaseModel):
    order_id: str
    currency: str
    paid: str
    refunded: str
    refundable: str = Field(description="paid minus refunded")
    refunds: list[RefundRecord]
    read_at: str = Field(description="ISO 8601, UTC: when the ledger was read for these figures")


def build_server(ledger: Ledger) -> MCPServer:
    """An MCP server whose tools work on `ledger`."""
    server = MCPServer(
        "demo-payments",
        title="Demo payments",
        instructions=INSTRUCTIONS,
        version="1.0.0",
        log_level="WARNING",
    )

    def issue_refund(
        order_id: str, amount: str, idempotency_key: str, currency: str = CURRENCY
    ) -> Refund:
        """Refund `amount` (a decimal string) on `order_id`, exactly once per
        `idempotency_key`. Refused when the order has no payment, or when the refunds would
        add up to more than the order paid."""
        try:
            refund = ledger.issue_refund(
                order_id=order_id,
                amount=amount,
                idempotency_key=idempotency_key,
                currency=currency,
            )
            return Refund(**refund)
        except RefundRefused as exc:
            raise ToolError(str(exc)) from exc

    def lookup_refunds(order_id: str) -> OrderRefunds:
        """What `order_id` paid, its refunds (oldest first, with their dates), what is left
        to refund, and when the ledger was read."""
        try:
            return OrderRefunds(**ledger.lookup_refunds(order_id=order_id))
        except RefundRefused as exc:
            raise ToolError(str(exc)) from exc

    server.add_tool(issue_refund, annotations=ToolAnnotations(idempotent_hint=True))
    server.add_tool(lookup_refunds, annotations=ToolAnnotations(read_only_hint=True))
    return server


def main(argv: Sequence[str] | None = None) -> None:
    """Serve over stdio, or over streamable HTTP on a loopback address with --http."""
    parser = argparse.ArgumentParser(
        prog="python -m demo_payments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK, help="loopback only")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    server = build_server(Ledger(default_ledger_path(), payments_on_record()))
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        # stdout carries the protocol from here on: nothing else may write to it.
        server.run("stdio")


if __name__ == "__main__":
    main()
