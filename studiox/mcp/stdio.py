"""The MCP tools over stdin/stdout, for MCP clients that launch a command (`mcp_stdio`)."""

import os

import anyio

from studiox.mcp.server import build_server, token_user

TOKEN_ENV = "STUDIOX_MCP_TOKEN"


class StdioRefused(Exception):
    """The server cannot start: no API token, or not a valid one. The message says which."""


def serve_stdio(*, token: str = "") -> None:
    """Serve the tools on stdin/stdout until the client closes them, as the owner of API
    token `token` (else the one in the STUDIOX_MCP_TOKEN environment variable)."""
    key = token or os.environ.get(TOKEN_ENV, "")
    if not key:
        raise StdioRefused(f"Pass --token or set {TOKEN_ENV}.")
    user = token_user(key)
    if user is None:
        raise StdioRefused("The API token is not valid, or its user is inactive.")
    # stdout carries the protocol from here on: nothing else may write to it.
    anyio.run(build_server(stdio_user_id=user.pk).run_stdio_async)
