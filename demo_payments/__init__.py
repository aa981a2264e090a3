"""A demo payments MCP server with its own SQLite ledger (docs/operating.md).

It serves the refund mission out of the box: `issue_refund` dedupes by idempotency key and
never refunds more than an order paid; `lookup_refunds` reports an order's refunds. It knows
nothing of Django, so it runs as a separate process, as a real payments provider would.
"""
