"""The MCP client behind `ctx.call_tool` (docs/operating.md): find a server's configuration,
call a tool. Its admin (the McpServer rows) is `admin` beside this module.

Synchronous on purpose: the engine calls it from a Celery worker thread, and each call runs
the async MCP client in a fresh event loop. A call opens a session, lists the tools (to learn
whether the tool takes an `idempotency_key`), calls the tool and closes the session again; a
stdio server is spawned for the call and stopped after it.

Two kinds of failure, because the engine treats them differently:
- `ToolTransportError`: no answer (cannot spawn or connect, timed out, the connection broke,
  a protocol error). The engine retries with back-off; the idempotency key makes that safe.
- `ToolRefusedError`: a clear answer that retrying will not change (the tool returned
  isError, the server is unknown or misconfigured, the call was malformed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import mcp_types
from django.conf import settings
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from missions.models import McpServer

DEFAULT_TIMEOUT_SECONDS = 30.0
IDEMPOTENCY_KEY = "idempotency_key"
# What a spawned server may see of our environment (besides the MCP SDK's own short list:
# HOME, LOGNAME, PATH, SHELL, TERM, USER) - never our secrets or database URL.
PASSED_ENV = (
    "PATH",
    "DEMO_PAYMENTS_LEDGER",
    "DEMO_PAYMENTS_PAID",
    "DEMO_LEDGERS_DB",
    "DEMO_LEDGERS_DATA",
)
STDERR_TAIL_CHARS = 800
# Errors in the call itself: sending it again cannot succeed.
REFUSED_CODES = {mcp_types.INVALID_PARAMS, mcp_types.METHOD_NOT_FOUND}


class McpClientError(Exception):
    """A tool call did not succeed."""


class ToolTransportError(McpClientError):
    """The server could not be reached or did not answer properly; worth retrying."""


class ToolRefusedError(McpClientError):
    """The tool (or the configuration) said no; retrying will not help. The message says why."""


@dataclass(frozen=True)
class ServerConfig:
    """How to reach one MCP server; `source` says where the configuration came from."""

    name: str
    transport: str  # "stdio" or "http", as McpServer.Transport
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    source: str = "settings"


def builtin_servers() -> dict[str, dict[str, Any]]:
    """The servers that need no set-up: the bundled demo payments and demo ledgers servers
    over stdio."""
    return {
        "payments": {
            "transport": McpServer.Transport.STDIO,
            "command": [sys.executable, "-m", "demo_payments"],
        },
        "ledgers": {
            "transport": McpServer.Transport.STDIO,
            "command": [sys.executable, "-m", "demo_ledgers"],
        },
    }


def config_from_row(row: McpServer) -> ServerConfig:
    """The configuration an McpServer row describes (ToolRefusedError when incomplete)."""
    return _config(
        row.name,
        {
            "transport": row.transport,
            "command": row.command,
            "env": row.env,
            "url": row.url,
            "timeout_seconds": row.timeout_seconds,
        },
        source="admin",
    )


def server_config(name: str) -> ServerConfig:
    """The configuration of MCP server `name`: an enabled McpServer row (a disabled one is
    skipped), else the STUDIOX_MCP_SERVERS setting, else a built-in server.
    ToolRefusedError when none has it or it is incomplete."""
    row = McpServer.objects.filter(name=name, enabled=True).first()
    if row is not None:
        return config_from_row(row)
    configured = settings.STUDIOX_MCP_SERVERS
    if name in configured:
        return _config(name, configured[name], source="settings")
    builtin = builtin_servers()
    if name in builtin:
        return _config(name, builtin[name], source="built-in")
    raise ToolRefusedError(f"unknown MCP server '{name}'")


def _config(name: str, data: Any, *, source: str) -> ServerConfig:
    def bad(problem: str) -> ToolRefusedError:
        return ToolRefusedError(f"MCP server '{name}' ({source}) is misconfigured: {problem}")

    if not isinstance(data, Mapping):
        raise bad("expected an object with a transport")
    transport = data.get("transport")
    command, env, url = data.get("command") or [], data.get("env") or {}, data.get("url") or ""
    if transport == McpServer.Transport.STDIO:
        argv_ok = isinstance(command, list) and all(isinstance(a, str) and a for a in command)
        if not command or not argv_ok:
            raise bad("stdio needs a command: a non-empty list of strings")
    elif transport == McpServer.Transport.HTTP:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad("http needs a url starting with http:// or https://")
    else:
        raise bad(f"transport must be 'stdio' or 'http', not {transport!r}")
    if not isinstance(env, Mapping):
        raise bad("env must be an object")
    try:
        timeout = float(data.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    except (TypeError, ValueError):
        raise bad("timeout_seconds must be a number") from None
    if timeout <= 0:
        raise bad("timeout_seconds must be positive")
    return ServerConfig(
        name=name,
        transport=transport,
        command=tuple(command),
        env={str(key): str(value) for key, value in env.items()},
        url=url,
        timeout_seconds=timeout,
        source=source,
    )


def call_tool(*, server: str, tool: str, arguments: dict, idempotency_key: str) -> dict:
    """Call `tool` on MCP server `server` and return its result as a JSON-serialisable dict
    (the structured content, else the parsed text content).

    `idempotency_key` goes in the request's `_meta`, and into the arguments when the tool's
    input schema declares an `idempotency_key` the arguments do not already carry.

    Raises ToolTransportError (retry) or ToolRefusedError (do not), see the module docstring.
    """
    config = server_config(server)
    with _stderr_capture() as errlog:
        try:
            result = asyncio.run(_call(config, tool, dict(arguments), idempotency_key, errlog))
        except Exception as exc:
            raise _classified(config, exc, errlog) from exc
    return _result_json(config, tool, result)


def list_tools(*, server: str | ServerConfig) -> list[dict]:
    """The tools of MCP server `server` (a name, or a configuration): name, title,
    description, input_schema and output_schema of each. Raises as call_tool does."""
    config = server if isinstance(server, ServerConfig) else server_config(server)
    with _stderr_capture() as errlog:
        try:
            tools = asyncio.run(_list(config, errlog))
        except Exception as exc:
            raise _classified(config, exc, errlog) from exc
    return [
        {
            "name": t.name,
            "title": t.title,
            "description": t.description or "",
            "input_schema": t.input_schema,
            "output_schema": t.output_schema,
        }
        for t in tools
    ]


def _client(config: ServerConfig, errlog: IO[str]) -> Client:
    if config.transport == McpServer.Transport.HTTP:
        return Client(config.url, read_timeout_seconds=config.timeout_seconds)
    params = StdioServerParameters(
        command=config.command[0],
        args=list(config.command[1:]),
        env=_child_env(config),
        cwd=settings.BASE_DIR,
    )
    return Client(stdio_client(params, errlog=errlog), read_timeout_seconds=config.timeout_seconds)


def _child_env(config: ServerConfig) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    env["STUDIOX_VAR_DIR"] = str(settings.VAR_DIR)  # where the demo ledger lives by default
    return {**env, **config.env}


async def _tools(client: Client) -> list[mcp_types.Tool]:
    listing = await client.list_tools()
    tools = list(listing.tools)
    while listing.next_cursor:
        listing = await client.list_tools(cursor=listing.next_cursor)
        tools.extend(listing.tools)
    return tools


async def _list(config: ServerConfig, errlog: IO[str]) -> list[mcp_types.Tool]:
    with anyio.fail_after(config.timeout_seconds):
        async with _client(config, errlog) as client:
            return await _tools(client)


async def _call(
    config: ServerConfig, tool: str, arguments: dict, key: str, errlog: IO[str]
) -> mcp_types.CallToolResult:
    # One deadline for spawning or connecting, the handshake, the listing and the call.
    with anyio.fail_after(config.timeout_seconds):
        async with _client(config, errlog) as client:
            schema = next((t.input_schema for t in await _tools(client) if t.name == tool), {})
            if IDEMPOTENCY_KEY in (schema.get("properties") or {}):
                arguments.setdefault(IDEMPOTENCY_KEY, key)
            return await client.call_tool(tool, arguments, meta={IDEMPOTENCY_KEY: key})


def _result_json(config: ServerConfig, tool: str, result: mcp_types.CallToolResult) -> dict:
    texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
    text = "\n".join(texts)
    if result.is_error:
        # The SDK prefixes a tool's own message; the engine adds server and tool itself.
        message = text.removeprefix(f"Error executing tool {tool}: ").strip()
        raise ToolRefusedError(message or f"{config.name}.{tool} failed without a message")
    if isinstance(result.structured_content, dict):
        return result.structured_content
    if result.structured_content is not None:
        return {"result": result.structured_content}
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            return {"text": text}
        return parsed if isinstance(parsed, dict) else {"result": parsed}
    return {"content": [block.model_dump(mode="json", by_alias=True) for block in result.content]}


def _classified(config: ServerConfig, exc: Exception, errlog: IO[str]) -> McpClientError:
    """The client error that says what went wrong, with the end of a stdio server's stderr."""
    leaf = _leaf(exc)
    where = f"MCP server '{config.name}'"
    if isinstance(leaf, McpClientError):
        return leaf
    if isinstance(leaf, MCPError) and leaf.code in REFUSED_CODES:
        return ToolRefusedError(f"{where} rejected the call: {leaf.message}")
    if isinstance(leaf, TimeoutError):
        message = f"{where} did not answer within {config.timeout_seconds:g} s"
    elif isinstance(leaf, OSError) and config.transport == McpServer.Transport.STDIO:
        message = f"{where} could not be started ({config.command[0]}): {leaf}"
    else:
        message = f"{where} failed: {type(leaf).__name__}: {leaf}"
    stderr = _tail(errlog)
    return ToolTransportError(f"{message}\n{stderr}" if stderr else message)


def _leaf(exc: BaseException) -> BaseException:
    # Task groups wrap the error that ended the session, sometimes twice.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@contextmanager
def _stderr_capture() -> Iterator[IO[str]]:
    # A real file: the child's stderr needs a descriptor (a worker's sys.stderr may be a proxy).
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        yield errlog


def _tail(errlog: IO[str]) -> str:
    errlog.flush()
    errlog.seek(0)
    return errlog.read()[-STDERR_TAIL_CHARS:].strip()
