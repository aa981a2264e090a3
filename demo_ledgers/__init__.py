"""A demo ledgers MCP server: the quarter-end balances of twelve demo finance systems (ERP,
bank, payroll, ...) in its own SQLite file (docs/operating.md).

It serves the quarterly reconciliation out of the box: `read_balances` reports a system's
accounts for a quarter, `post_adjusting_entry` posts an adjusting entry once per idempotency
key. It knows nothing of Django, so it runs as a separate process, as the real systems would.
"""
