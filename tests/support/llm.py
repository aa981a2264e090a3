"""A real HTTP server on 127.0.0.1 that speaks an LLM API from scripted replies."""

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # a dict or list is sent as JSON, a str as it is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict
    body: Any


class FakeLLMServer:
    """Answers each POST with the next scripted reply and keeps what it received."""

    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.received: list[Received] = []
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, body: Any = None, *, status: int = 200, headers=None, delay=0.0) -> None:
        self.script.append(Scripted(status, body, headers or {}, delay))

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                fake.received.append(Received(self.path, headers, json.loads(raw or b"null")))
                scripted = fake.script.popleft() if fake.script else Scripted(500, "unscripted")
                if scripted.delay and fake.stop.wait(scripted.delay):
                    return
                payload = scripted.body
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(scripted.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in scripted.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args) -> None:
                pass

        return Handler


@pytest.fixture
def llm_server():
    server = FakeLLMServer()
    yield server
    server.close()
