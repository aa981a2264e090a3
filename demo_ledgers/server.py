"""The demo ledgers MCP server: `read_balances` and `post_adjusting_entry` over the ledgers.

Run it over stdio (how StudioX spawns it by default):

    python -m demo_ledgers

or over streamable HTTP on loopback, at http://127.0.0.1:N/mcp:

    python -m demo_ledgers --http --port N

The SQLite file is DEMO_LEDGERS_DB (default: ledgers.sqlite3 in STUDIOX_VAR_DIR, else ./var);
the systems and their balances come from DEMO_LEDGERS_DATA (a JSON file), else the bundled
`demo_ledgers/balances.json` (twelve demo systems, quarters 2026-Q2 and 2026-Q3).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from demo_ledgers.ledger import LedgerRefused, Ledgers, data_on_record, default_db_path

LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTRUCTIONS = """Demo ledgers of twelve finance systems (erp, bank, payroll, card_processor,
expenses, inventory, billing, treasury, tax, fixed_assets, procurement, crm). read_balances
shows a system's account balances for a quarter such as 2026-Q3. post_adjusting_entry posts an
adjusting entry to one account, once per idempotency_key (repeat the key to retry safely: you
get the original entry back, marked duplicate). Amounts are decimal strings such as "-1250.00"."""


class Entry(BaseModel):
    entry_id: str
    system: str
    quarter: str
    account: str
    amount: str = Field(description="decimal string, negative decreases the account")
    currency: str
    memo: str
    idempotency_key: str
    created_at: str = Field(description="ISO 8601, UTC")


class PostedEntry(Entry):
    duplicate: bool = Field(description="true when this key was seen before: nothing new posted")


class AccountBalance(BaseModel):
    account: str
    recorded: str = Field(description="the quarter-end balance the system recorded")
    adjustments: str = Field(description="the sum of the adjusting entries posted since")
    balance: str = Field(description="recorded plus adjustments")


class Balances(BaseModel):
    system: str
    name: str
    quarter: str
    currency: str
    accounts: list[AccountBalance]
    total: str = Field(description="the sum of the accounts' balances")
    entries: list[Entry]


def build_server(ledgers: Ledgers) -> MCPServer:
    """An MCP server whose tools work on `ledgers`."""
    server = MCPServer(
        "demo-ledgers",
        title="Demo ledgers",
        instructions=INSTRUCTIONS,
        version="1.0.0",
        log_level="WARNING",
    )

    def read_balances(system: str, quarter: str) -> Balances:
        """The account balances of `system` (e.g. bank) for `quarter` (e.g. 2026-Q3), with the
        adjusting entries posted to them. Refused for an unknown system or quarter."""
        try:
            return Balances(**ledgers.read_balances(system=system, quarter=quarter))
        except LedgerRefused as exc:
            raise ToolError(str(exc)) from exc

    def post_adjusting_entry(
        system: str, quarter: str, account: str, amount: str, memo: str, idempotency_key: str
    ) -> PostedEntry:
        """Post `amount` (a decimal string; negative decreases) to `account` of `system` for
        `quarter`, exactly once per `idempotency_key`. Refused for an unknown system, quarter
        or account, a zero amount, or a key already used for another entry."""
        try:
            entry = ledgers.post_adjusting_entry(
                system=system,
                quarter=quarter,
                account=account,
                amount=amount,
                memo=memo,
                key=idempotency_key,
            )
            return PostedEntry(**entry)
        except LedgerRefused as exc:
            raise ToolError(str(exc)) from exc

    server.add_tool(read_balances, annotations=ToolAnnotations(read_only_hint=True))
    server.add_tool(post_adjusting_entry, annotations=ToolAnnotations(idempotent_hint=True))
    return server


def main(argv: Sequence[str] | None = None) -> None:
    """Serve over stdio, or over streamable HTTP on a loopback address with --http."""
    parser = argparse.ArgumentParser(
        prog="python -m demo_ledgers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK, help="loopback only")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    systems, balances = data_on_record()
    server = build_server(Ledgers(default_db_path(), systems, balances))
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        # stdout carries the protocol from here on: nothing else may write to it.
        server.run("stdio")


if __name__ == "__main__":
    main()
