"""The MCP server over streamable HTTP at /mcp, mounted beside Django: API-token
authentication (with the API's lockout and rate limit), and the session manager's life.

The MCP session manager needs a running task group for its whole life. ASGI lifespan events
start and stop it when the server sends them; otherwise (Channels' ProtocolTypeRouter does not
route lifespan) it starts on the first /mcp request, in the server's event loop, and stops
when that loop ends.

The endpoint answers POST only, for a Host in ALLOWED_HOSTS. Stateless JSON needs no
server-sent event stream, so GET (which would hold one open for as long as the client likes)
and DELETE (which ends a session) get 405 before the MCP library runs: the MCP transport spec's
answer from a server without a stream.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from studiox.api.middleware import HOST_REFUSED
from studiox.api.throttling import UserThrottle
from studiox.asgi_messages import read_body, replay, send_error
from studiox.lockout import bad_token_limit
from studiox.mcp.server import USER_ID_SCOPE_KEY, build_server, in_django_thread, token_user

MCP_PATH = "/mcp"
MCP_METHODS = ("POST",)

logger = logging.getLogger("studiox.mcp")


class McpEndpoint:
    """The MCP server over stateless streamable HTTP (JSON responses), token-authenticated.

    Stateless: every request stands alone, so any web process can answer it and more processes
    behind a load balancer need no sticky sessions.
    """

    def __init__(self) -> None:
        self._manager = None
        self._app: Callable | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    def _build(self) -> None:
        server = build_server()
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            transport_security=transport_security(),
            max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 4 * 1024 * 1024,
        )
        self._manager = server.session_manager
        self._app = TokenAuthenticated(_with_whole_body(self._manager.handle_request))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (tests run several): the old manager died with the old loop.
            self._loop, self._task, self._lock = loop, None, asyncio.Lock()
        async with self._lock:
            if self._task is not None and not self._task.done():
                return
            self._build()
            started, self._stop = asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._run(started, self._stop))
            await started.wait()

    async def _run(self, started: asyncio.Event, stop: asyncio.Event) -> None:
        async with self._manager.run():
            started.set()
            await stop.wait()

    async def stop(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await self._task
            self._task = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in MCP_METHODS:
            await _method_not_allowed(scope["method"], send)
            return
        if not _host_allowed(scope):
            await send_error(send, 400, HOST_REFUSED)
            return
        if self._task is None or self._task.done() or self._loop is not asyncio.get_running_loop():
            await self.start()
        await self._app(scope, receive, send)


def _with_whole_body(app: Callable) -> Callable:
    """`app` called with the body read whole: the MCP library logs a traceback when a body ends
    early, yet a client that left, or that the body limit refused, is no error of the server."""

    async def whole(scope: Scope, receive: Receive, send: Send) -> None:
        content = await read_body(receive)
        if content is not None:
            await app(scope, replay(content, receive), send)

    return whole


def _host_allowed(scope: Scope) -> bool:
    """Django's Host rules (ALLOWED_HOSTS), as for the API: the MCP library's own check would
    answer a plain-text 421. A refused host is a scanner or a misrouting: one line, no traceback."""
    try:
        ASGIRequest({**scope, "query_string": b""}, io.BytesIO()).get_host()
    except DisallowedHost as exc:
        logger.warning("Refused %s %s: %s", scope["method"], scope["path"], exc)
        return False
    return True


async def _method_not_allowed(method: str, send: Send) -> None:
    allowed = ", ".join(MCP_METHODS)
    detail = f"Method {method[:20]} is not allowed: this stateless MCP endpoint answers {allowed}."
    await send_error(send, 405, detail, headers=[(b"allow", allowed.encode())])


def is_mcp_path(path: str) -> bool:
    return path == MCP_PATH or path == MCP_PATH + "/"


def mount_http(django_app: Callable) -> Callable:
    """An ASGI app: /mcp to the MCP server, everything else to Django."""
    mcp = McpEndpoint()

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await mcp.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http" and is_mcp_path(scope["path"]):
            await mcp(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app


def transport_security() -> TransportSecuritySettings:
    """Host checks against DNS rebinding, from ALLOWED_HOSTS (any port)."""
    hosts = [host for host in settings.ALLOWED_HOSTS if host]
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [host.lstrip(".") for host in hosts]
    origins = [f"{scheme}://{name}" for name in names for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],
        allowed_origins=[
            *origins,
            *(f"{origin}:*" for origin in origins),
            *settings.CSRF_TRUSTED_ORIGINS,
        ],
    )


async def _unauthorized(send: Send) -> None:
    detail = (
        "Authentication credentials were not provided or are not valid: send "
        "'Authorization: Token <key>' (or 'Bearer <key>')."
    )
    await send_error(send, 401, detail, headers=[(b"www-authenticate", b'Token realm="api"')])


def throttle_wait(user) -> float | None:
    """None if `user` may make another request now, else the seconds to wait. The same
    per-user budget as the REST API (one cache key), so MCP is no way around its limit."""
    throttle = UserThrottle()
    if throttle.allow_request(SimpleNamespace(user=user), None):
        return None
    return throttle.wait() or 1.0


def token_user_or_wait(key: str, address: str) -> tuple[Any, int | None]:
    """(user, None) for a valid token; (None, seconds) while `address` is locked out for
    guessing; (None, None) for a wrong token, which counts against `address` as on the API."""
    limit = bad_token_limit()
    wait = limit.wait(address)
    if wait is not None:
        return None, wait
    user = token_user(key)
    if user is None:
        return None, limit.record(address)
    return user, None


def _token_from(scope: Scope) -> str:
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() in ("token", "bearer") else ""


class TokenAuthenticated:
    """Lets through only requests with a valid API token, marking the scope with its user."""

    def __init__(self, app: Callable):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _token_from(scope)
        if not key:
            await _unauthorized(send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        user, locked = await in_django_thread(token_user_or_wait)(key, address)
        if locked is not None:
            detail = (
                "Too many requests with an invalid API token from your address. "
                f"Expected available in {locked} seconds."
            )
            await send_error(send, 429, detail, headers=[(b"retry-after", str(locked).encode())])
            return
        if user is None:
            await _unauthorized(send)
            return
        wait = await in_django_thread(throttle_wait)(user)
        if wait is not None:
            seconds = math.ceil(wait)
            detail = f"Request was throttled. Expected available in {seconds} seconds."
            await send_error(send, 429, detail, headers=[(b"retry-after", str(seconds).encode())])
            return
        await self.app({**scope, USER_ID_SCOPE_KEY: user.pk}, receive, send)
