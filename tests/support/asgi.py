"""One HTTP request driven by hand through the ASGI interface, to studiox.asgi's application or
any other ASGI app: the body offered chunk by chunk, the answer's messages kept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

# Safety net only: a server that waits for ever fails the test instead of hanging the suite.
HANG = 20
# How many body messages a client offers before giving up; far more than any limit needs.
MAX_OFFERED = 5_000


class Client:
    """One HTTP request driven by hand through the ASGI interface."""

    def __init__(self, chunks: Callable[[int], bytes | None]):
        self.chunks = chunks  # the n-th body message, None when the body is over
        self.offered = 0
        self.messages: list[dict] = []

    async def receive(self) -> dict:
        if self.offered >= MAX_OFFERED:
            return {"type": "http.disconnect"}
        chunk = self.chunks(self.offered)
        self.offered += 1
        if chunk is None:  # the body is over: later calls wait for a disconnect
            await asyncio.Event().wait()
        return {
            "type": "http.request",
            "body": chunk,
            "more_body": self.chunks(self.offered) is not None,
        }

    async def send(self, message: dict) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    def header(self, name: bytes) -> str | None:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        values = [v.decode() for k, v in start["headers"] if k.lower() == name]
        return values[0] if values else None

    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    def json(self) -> dict:
        assert self.header(b"content-type") == "application/json"
        answer = json.loads(self.body())
        assert set(answer) == {"detail", "errors"} and answer["detail"], answer
        return answer


def request(
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    client: Client | None = None,
    app=None,
) -> Client:
    """Send one request to `app` (studiox.asgi.application unless given) and wait for it to
    finish."""
    if app is None:
        from studiox.asgi import application as app
    client = client or Client(lambda n: b"" if n == 0 else None)
    names = {name.lower() for name, _ in headers}
    given = [*([] if "host" in names else [("host", "127.0.0.1:8000")]), *headers]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in given],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def run() -> None:
        await asyncio.wait_for(app(scope, client.receive, client.send), HANG)

    asyncio.run(run())
    return client
