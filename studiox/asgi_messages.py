"""ASGI messages by hand: error answers for requests refused before any application runs, and
request bodies read whole before an application sees them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import Message, Receive, Send

Headers = Sequence[tuple[bytes, bytes]]


async def send_error(
    send: Send,
    status: int,
    detail: str,
    *,
    as_json: bool = True,
    headers: Headers = (),
) -> None:
    """A complete response: JSON `{"detail", "errors"}` like the REST API's, or plain text."""
    if as_json:
        body, content_type = (
            json.dumps({"detail": detail, "errors": {}}).encode(),
            b"application/json",
        )
    else:
        body, content_type = detail.encode(), b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left (or was refused) before its end."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(content: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `content` as the whole body, then whatever `receive` gives."""
    pending: list[Message] = [{"type": "http.request", "body": content, "more_body": False}]

    async def replaying() -> Message:
        return pending.pop() if pending else await receive()

    return replaying
