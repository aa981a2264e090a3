"""A demo payments MCP server with its own SQLite ledger (docs/operating.md).

It serves the refund mission out of the box: `issue_refund` dedupes by idempotency key and
never refunds more than an order paid; `lookup_refunds` reports what an order paid, its
refunds with their dates and what is left, as of the moment it reads the ledger. It knows
nothing of Django, so it runs as a separate process, as a real payments provider would.
"""
