"""Request bodies bounded at the ASGI edge, in front of Django and every mounted app.

Django's ASGI handler reads the whole body (to disk past FILE_UPLOAD_MAX_MEMORY_SIZE) before
any middleware runs, and a chunked body declares no length for a check to read. Here a
declared length over the limit (DATA_UPLOAD_MAX_MEMORY_SIZE, or MAX_UPLOAD_BYTES for a file
upload to a page) is refused before a byte of the body is read, a streamed body is counted and
refused as soon as it passes the limit, and a body must arrive within REQUEST_BODY_TIMEOUT
seconds (servers time out slow headers, not slow bodies). A refusal closes the connection, so
the server stops reading whatever the client still sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from django.conf import settings
from starlette.types import Message, Receive, Scope, Send

from studiox.api.middleware import API_PREFIX, body_too_large, content_length_refusal
from studiox.asgi_messages import read_body, replay, send_error
from studiox.mcp.http import is_mcp_path

DISCONNECT: Message = {"type": "http.disconnect"}
CLOSE = [(b"connection", b"close")]


def answers_in_json(path: str) -> bool:
    return path.startswith(API_PREFIX) or is_mcp_path(path)


class RequestBodyLimit:
    """ASGI middleware: HTTP request bodies within the size limit and the time limit."""

    def __init__(self, app: Callable):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        as_json = answers_in_json(scope["path"])
        limit = body_limit(scope, as_json=as_json)
        declared = _header_values(scope, b"content-length")
        raw = declared.pop().decode("latin-1") if len(declared) == 1 else None
        if declared:  # a second, different value
            refusal = 400, "Conflicting Content-Length headers."
        else:
            refusal = content_length_refusal(raw, limit)
        if refusal is not None:
            await send_error(send, *refusal, as_json=as_json, headers=CLOSE)
            return
        body = BoundedBody(receive, send, limit=limit, as_json=as_json)
        if raw is None:
            # Without a declared length Django (and DRF) would read the body as empty: hand it on
            # whole, with the length it turned out to have.
            content = await read_body(body.receive)
            if content is None:
                return
            scope = _with_length(scope, len(content))
            receive = replay(content, body.receive)
        else:
            receive = body.receive
        await self.app(scope, receive, body.send)


def body_limit(scope: Scope, *, as_json: bool) -> int | None:
    """DATA_UPLOAD_MAX_MEMORY_SIZE, or MAX_UPLOAD_BYTES for a file upload to a page (the API and
    MCP take JSON only)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    content_types = _header_values(scope, b"content-type")
    uploading = any(value.lower().startswith(b"multipart/form-data") for value in content_types)
    if as_json or limit is None or not uploading:
        return limit
    return max(limit, settings.MAX_UPLOAD_BYTES)


def _header_values(scope: Scope, name: bytes) -> set[bytes]:
    return {value for key, value in scope["headers"] if key.lower() == name}


def _with_length(scope: Scope, length: int) -> Scope:
    if not length:
        return scope
    return {**scope, "headers": [*scope["headers"], (b"content-length", str(length).encode())]}


class BoundedBody:
    """One request's body messages, counted against the limit and the deadline. Once refused,
    the application is told the client left and whatever it still sends goes nowhere."""

    def __init__(self, receive: Receive, send: Send, *, limit: int | None, as_json: bool):
        self._receive, self._send = receive, send
        self.limit, self.as_json = limit, as_json
        timeout = settings.REQUEST_BODY_TIMEOUT
        self.deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        self.received = 0
        self.complete = self.refused = self.responding = False

    async def receive(self) -> Message:
        if self.refused:
            return DISCONNECT
        if self.complete:  # after the body, the server only reports a disconnect
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            return await self._refuse(408, "The request body did not arrive in time.")
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.limit is not None and self.received > self.limit:
            return await self._refuse(413, body_too_large(self.limit))
        self.complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.responding = True
        await self._send(message)

    async def _refuse(self, status: int, detail: str) -> Message:
        self.refused = True
        if not self.responding:
            await send_error(self._send, status, detail, as_json=self.as_json, headers=CLOSE)
        return DISCONNECT
