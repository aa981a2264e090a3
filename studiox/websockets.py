"""What every StudioX WebSocket shares: a same-origin handshake, a 4404 close for paths that
lead nowhere, and consumers that refuse malformed frames and always stop what they started.

Close codes a page may see (each after the handshake was accepted, since a browser sees no
code at all on a refused handshake, only 1006):
1003 a binary frame (StudioX speaks JSON text), 1009 a frame over MAX_FRAME_CHARS,
4400 a frame that is not what the socket takes, 4404 no such WebSocket.
A foreign Origin is refused at the handshake instead (HTTP 403): such a socket must never open.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_BAD_FRAME = 4400
CLOSE_NOT_FOUND = 4404

# Clients send at most a small JSON object ({"after": N}); anything longer is refused before
# it is parsed, so a frame's size never decides how much work the server does.
MAX_FRAME_CHARS = 4096

DEFAULT_PORTS = {"http": 80, "https": 443}
# How long a cancelled read may take to end before it is cancelled again (see _cancel_all).
CANCEL_AGAIN_SECONDS = 1.0


class StudioConsumer(AsyncJsonWebsocketConsumer):
    """A JSON consumer whose per-connection work cannot outlive its connection.

    Tasks started with `start_task` and groups joined with `join_group` are released in a
    `finally` around the whole connection, whichever way it ends: the client's close or
    disappearance, a refused frame, an exception, or the server cancelling it at shutdown.
    A consumer that closes the socket itself (`close_and_stop`) ends at once, instead of
    waiting for the client to answer the close.

    Channels' own loop (AsyncConsumer.__call__) is replaced for two reasons: the handshake is
    handled before the channel layer is read, so a socket refused there (4401, 4403, 4404)
    costs the layer nothing; and the reads are stopped until they have really ended (see
    `_cancel_all`), where Channels cancels them once and waits.
    """

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self._tasks: set[asyncio.Task] = set()
        self._groups: list[str] = []
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        try:
            if self.channel_layer is not None:
                self.channel_name = await self.channel_layer.new_channel()
                sources.append(functools.partial(self.channel_layer.receive, self.channel_name))
            await self.dispatch(await receive())  # websocket.connect: accept or refuse
            await _dispatch_until_stopped(sources, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._release()

    def start_task(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=f"{name} {self.channel_name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join_group(self, group: str) -> None:
        self._groups.append(group)  # first, so that a join cancelled half-way is still undone
        await self.channel_layer.group_add(group, self.channel_name)

    async def close_and_stop(self, code: int) -> NoReturn:
        self._cancel_tasks()  # before the close, so nothing is sent after it
        await self.close(code=code)
        await self._release()
        raise StopConsumer

    async def disconnect(self, code: int) -> None:
        # Released here too, not only in the finally: here the consumer's channel read is still
        # running, and the Redis round trips of leaving groups let a read that just received a
        # message finish its bookkeeping. Cancelled in the middle of it, channels-redis keeps a
        # stale per-channel lock that later fails every read on another event loop.
        await self._release()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs
    ) -> None:
        if text_data is None:
            await self.close_and_stop(CLOSE_UNSUPPORTED_DATA)
        if len(text_data) > MAX_FRAME_CHARS:
            await self.close_and_stop(CLOSE_MESSAGE_TOO_BIG)
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            await self.close_and_stop(CLOSE_BAD_FRAME)
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs) -> None:
        """Sockets that take no messages refuse every one; subclasses that do override this."""
        await self.close_and_stop(CLOSE_BAD_FRAME)

    def _cancel_tasks(self) -> list[asyncio.Task]:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    async def _release(self) -> None:
        tasks = self._cancel_tasks()
        if tasks:
            await asyncio.wait(tasks)
        groups, self._groups = self._groups, []
        for group in groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the layer is away: its memberships expire on their own
                logger.warning("could not leave channel group %s", group, exc_info=True)


async def _dispatch_until_stopped(
    sources: list[Callable[[], Awaitable[dict]]], dispatch: Callable[[dict], Awaitable[None]]
) -> None:
    """channels.utils.await_many_dispatch, with reads that are surely stopped at the end."""
    tasks = [asyncio.ensure_future(source()) for source in sources]
    try:
        while True:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for index, task in enumerate(tasks):
                if task.done():
                    await dispatch(task.result())
                    tasks[index] = asyncio.ensure_future(sources[index]())
    finally:
        await _cancel_all(tasks)


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    # A cancel can be lost: Python 3.11's asyncio.wait_for returns normally when the cancel
    # lands just as its inner call completes, and redis-py sends every command through it. A
    # channels-redis read that lost its cancel that way carries on, blocking on Redis, for
    # the life of the process; so whatever has not ended is cancelled again.
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a read that failed as it was stopped is no news


class NotFoundConsumer(StudioConsumer):
    """Any WebSocket path no route matches. Accepted, then closed with 4404: a browser's
    close event only carries a code once the socket has opened."""

    async def connect(self) -> None:
        await self.accept()
        await self.close_and_stop(CLOSE_NOT_FOUND)


class ForeignOriginConsumer(StudioConsumer):
    """Refuses the handshake (HTTP 403): a socket from another site must never open."""

    async def connect(self) -> None:
        await self.close()  # before accepting: the server answers the handshake with 403
        raise StopConsumer


class SameOriginValidator:
    """Opens a WebSocket only for a page of this site (Cross-Site WebSocket Hijacking).

    The handshake's Origin must equal the site's own origin (scheme, host and port, from the
    Host header and the scope's scheme: ws is http, wss is https, and so is a request the
    SECURE_PROXY_SSL_HEADER marks as secure) or one of
    CSRF_TRUSTED_ORIGINS (with their `*.` subdomain patterns, as Django's CSRF check reads
    them), and the Host must be one of ALLOWED_HOSTS. A refused handshake gets HTTP 403.
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await ForeignOriginConsumer()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_allowed(scope: dict) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    # No Origin: browsers always send one on a WebSocket handshake, so this is a script or a
    # tool, which can claim any Origin it likes and is not what this check is for. It is still
    # refused, as Channels' own validator does: one header is all such a client needs, and a
    # browser whose Origin went missing somewhere on the way must not get a pass.
    if origin is None or host is None:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    theirs = _parse_origin(origin)
    if theirs is None:  # "null" (sandboxed frames, file: pages) or not an origin at all
        return False
    if _same(theirs, _parse_origin(f"{_site_scheme(scope)}://{host}")):
        return True
    return any(_trusted(theirs, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


def _header(scope: dict, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key == name]
    if len(values) != 1:  # absent, or repeated to confuse whoever reads only one of them
        return None
    try:
        return values[0].decode("ascii")
    except UnicodeDecodeError:
        return None


def _site_scheme(scope: dict) -> str:
    """https for wss, or when the TLS proxy says so as Django reads it for HTTP requests."""
    if scope.get("scheme") == "wss":
        return "https"
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        value = _header(scope, name)
        if value is not None and value.split(",", 1)[0].strip() == secure_value:
            return "https"
    return "http"


def _allowed_hosts() -> list[str]:
    # As django.http.HttpRequest.get_host: in debug with nothing configured, localhost only.
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def _parse_origin(value: str) -> SplitResult | None:
    try:
        parsed = urlsplit(value)
        parsed.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        return None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        return None
    if parsed.username or parsed.password or parsed.path or parsed.query or parsed.fragment:
        return None
    return parsed


def _same(a: SplitResult, b: SplitResult | None) -> bool:
    """Same scheme, host and port; a port left out is the scheme's default."""
    if b is None:
        return False
    return (a.scheme, a.hostname, a.port or DEFAULT_PORTS[a.scheme]) == (
        b.scheme,
        b.hostname,
        b.port or DEFAULT_PORTS[b.scheme],
    )


def _trusted(origin: SplitResult, pattern: str) -> bool:
    if "*" not in pattern:
        return _same(origin, _parse_origin(pattern))
    trusted = urlsplit(pattern)
    return origin.scheme == trusted.scheme and is_same_domain(
        origin.netloc, trusted.netloc.lstrip("*")
    )
