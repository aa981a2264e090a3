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

A server's `rate_limit` and its `tool_rate_limits` hold across every worker
(integrations.ratelimit): a call over one raises `ToolRateLimited` with the next slot, before
anything is sent. The limit is taken right before the tool call itself, inside the session,
so the server sees the calls spaced as the limiter granted them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import mcp_types
from django.conf import settings
from django.db import connections
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from integrations import ratelimit
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


class ToolRateLimited(ToolTransportError, ratelimit.RateLimited):
    """Over the server's or the tool's rate limit: nothing was sent; try at `next_slot`."""

    def __init__(self, *, next_slot, limit: str):
        ratelimit.RateLimited.__init__(self, next_slot=next_slot, limit=limit)


@dataclass(frozen=True)
class _Limit:
    key: str
    rate: ratelimit.Rate
    words: str  # "the payments API's rate limit (issue_refund, 10/s)"


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
    rate_limit: str = ""
    tool_rate_limits: Mapping[str, str] = field(default_factory=dict)


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
            "rate_limit": row.rate_limit,
            "tool_rate_limits": row.tool_rate_limits,
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
    rate_limit, tool_rate_limits = _rate_limits(data, bad)
    return ServerConfig(
        name=name,
        transport=transport,
        command=tuple(command),
        env={str(key): str(value) for key, value in env.items()},
        url=url,
        timeout_seconds=timeout,
        source=source,
        rate_limit=rate_limit,
        tool_rate_limits=tool_rate_limits,
    )


def _rate_limits(data: Mapping, bad: Callable[[str], Exception]) -> tuple[str, dict[str, str]]:
    """The server's rate limit and its tools' ones, each checked to be a rate ("10/s")."""
    rate_limit = data.get("rate_limit") or ""
    per_tool = data.get("tool_rate_limits") or {}
    if not isinstance(per_tool, Mapping) or not all(isinstance(k, str) for k in per_tool):
        raise bad('tool_rate_limits must be an object: tool -> rate, e.g. {"issue_refund": "10/s"}')
    for where, text in [("rate_limit", rate_limit)] + [
        (f"tool_rate_limits[{tool}]", rate) for tool, rate in per_tool.items()
    ]:
        if not text and where == "rate_limit":
            continue
        try:
            ratelimit.parse(text)
        except ValueError as exc:
            raise bad(f"{where}: {exc}") from None
    return str(rate_limit), {tool: str(rate) for tool, rate in per_tool.items()}


def rate_limits_for(config: ServerConfig, tool: str) -> list[_Limit]:
    """The limits a call of `tool` counts against: the tool's own, then the server's."""
    limits = []
    if tool in config.tool_rate_limits:
        rate = ratelimit.parse(config.tool_rate_limits[tool])
        limits.append(
            _Limit(
                f"mcp:{config.name}:{tool}",
                rate,
                f"the {config.name} API's rate limit ({tool}, {rate})",
            )
        )
    if config.rate_limit:
        rate = ratelimit.parse(config.rate_limit)
        limits.append(
            _Limit(f"mcp:{config.name}", rate, f"the {config.name} API's rate limit ({rate})")
        )
    return limits


def _check(limits: list[_Limit], *, waiter: str) -> None:
    """ToolRateLimited if a limit has no room now (nothing is taken)."""
    for limit in limits:
        slot = ratelimit.try_acquire(limit.key, limit.rate, waiter=waiter, record=False)
        if slot is not None:
            raise ToolRateLimited(next_slot=slot, limit=limit.words)


def _hold(limits: list[_Limit], *, waiter: str, seconds: float) -> list[ratelimit.Hold]:
    """A slot held under every limit for the call about to be sent, else ToolRateLimited."""
    holds: list[ratelimit.Hold] = []
    try:
        for limit in limits:
            taken = ratelimit.try_hold(limit.key, limit.rate, waiter=waiter, hold_seconds=seconds)
            if not isinstance(taken, ratelimit.Hold):
                raise ToolRateLimited(next_slot=taken, limit=limit.words)
            holds.append(taken)
    except BaseException:
        _release(holds)  # counted as calls made now: never fewer than were sent
        raise
    return holds


def _release(holds: list[ratelimit.Hold]) -> None:
    for hold in holds:
        ratelimit.release(hold)


def _beside_the_loop(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    # Runs in a thread beside the session's event loop (the ORM refuses to run inside one);
    # a database connection the thread opened is closed with it.
    try:
        return fn(**kwargs)
    finally:
        if ratelimit.backend_name() == "database":
            connections.close_all()


def call_tool(*, server: str, tool: str, arguments: dict, idempotency_key: str) -> dict:
    """Call `tool` on MCP server `server` and return its result as a JSON-serialisable dict
    (the structured content, else the parsed text content).

    `idempotency_key` goes in the request's `_meta`, and into the arguments when the tool's
    input schema declares an `idempotency_key` the arguments do not already carry.

    Raises ToolTransportError (retry) or ToolRefusedError (do not), see the module docstring.
    """
    config = server_config(server)
    limits = rate_limits_for(config, tool)
    # A full window is seen before a server is spawned or connected to for nothing.
    _check(limits, waiter=idempotency_key)
    with _stderr_capture() as errlog:
        try:
            result = asyncio.run(
                _call(config, tool, dict(arguments), idempotency_key, errlog, limits=limits)
            )
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
    config: ServerConfig,
    tool: str,
    arguments: dict,
    key: str,
    errlog: IO[str],
    *,
    limits: list[_Limit],
) -> mcp_types.CallToolResult:
    # One deadline for spawning or connecting, the handshake, the listing and the call.
    with anyio.fail_after(config.timeout_seconds):
        async with _client(config, errlog) as client:
            schema = next((t.input_schema for t in await _tools(client) if t.name == tool), {})
            if IDEMPOTENCY_KEY in (schema.get("properties") or {}):
                arguments.setdefault(IDEMPOTENCY_KEY, key)
            if not limits:
                return await client.call_tool(tool, arguments, meta={IDEMPOTENCY_KEY: key})
            # The slot is held from right before the call until its answer: the server
            # receives it in between, so it never sees more calls in a window than the rate.
            holds = await asyncio.to_thread(
                _beside_the_loop, _hold, limits=limits, waiter=key, seconds=config.timeout_seconds
            )
            try:
                return await client.call_tool(tool, arguments, meta={IDEMPOTENCY_KEY: key})
            finally:
                await asyncio.to_thread(_beside_the_loop, _release, holds=holds)


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
