"""Hostile HTTP clients against the real ASGI application: bodies too large, endless or slow,
long-lived MCP streams and forged Host headers get a prompt, clear answer and bound the work."""

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from knowledge.models import Document
from missions.models import Mission
from tests.support.api import fresh_throttles, token_for  # noqa: F401
from tests.support.asgi import HANG, Client, request
from tests.support.pages import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def endless(size: int) -> Callable[[int], bytes]:
    return lambda n: b"x" * size


def json_chunks(document: dict, size: int) -> Callable[[int], bytes | None]:
    data = json.dumps(document).encode()
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return lambda n: parts[n] if n < len(parts) else None


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(settings):
    client = request(
        "POST",
        "/api/missions/",
        headers=[("content-length", "50000000"), ("content-type", "application/json")],
        client=Client(endless(10)),
    )
    assert client.status == 413
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert f"limit is {limit} bytes" in client.json()["detail"]
    assert client.offered == 0
    assert client.header(b"connection") == "close"


def test_a_chunked_body_is_refused_once_past_the_limit_and_not_read_further(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = request(
        "POST",
        "/api/events/",
        headers=[("content-type", "application/json")],
        client=Client(endless(100)),
    )
    assert client.status == 413
    assert "limit is 1000 bytes" in client.json()["detail"]
    assert client.offered == 11  # 1,100 bytes: the first message past the limit is the last read
    assert client.header(b"connection") == "close"


def test_an_endless_body_to_a_web_page_gets_a_plain_413(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = request("POST", "/accounts/login/", client=Client(endless(300)))
    assert client.status == 413
    assert client.header(b"content-type").startswith("text/plain")
    assert b"limit is 1000 bytes" in client.body()
    assert client.offered == 4


def test_an_endless_body_to_mcp_is_refused_before_authentication(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = request("POST", "/mcp", client=Client(endless(500)))
    assert client.status == 413
    client.json()
    assert client.offered == 3


def test_a_chunked_body_within_the_limit_reaches_the_api_whole(requester):
    document = {"type": "test_count", "input": {"steps": 1}}
    client = request(
        "POST",
        "/api/missions/",
        headers=[
            ("authorization", f"Token {token_for(requester)}"),
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
        client=Client(json_chunks(document, 7)),
    )
    assert client.status == 201, client.body()
    assert Mission.objects.get().started_by == requester


CSRF = "c" * 32  # a CSRF secret, sent as the cookie and as the form field


def admin_import(admin_user, size: int) -> Client:
    """The admin's knowledge import, with a Markdown file of about `size` bytes."""
    session = session_cookie(admin_user)
    text = "# Refund handbook\n\n" + "Refunds are paid within 14 days. " * (size // 33)
    boundary = "studiox-upload"
    parts = [
        ("csrfmiddlewaretoken", "", CSRF),
        ("record_type", "", ""),
        ("file", '; filename="refund-handbook.md"', text),
    ]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n{value}\r\n'
        for name, extra, value in parts
    )
    data = (body + f"--{boundary}--\r\n").encode()
    pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    return request(
        "POST",
        "/admin/knowledge/document/import/",
        headers=[
            ("content-type", f"multipart/form-data; boundary={boundary}"),
            ("content-length", str(len(data))),
            ("cookie", f"sessionid={session}; csrftoken={CSRF}"),
        ],
        client=Client(lambda n: pieces[n] if n < len(pieces) else None),
    )


def test_a_file_upload_to_the_admin_may_pass_the_request_limit(admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = admin_import(admin_user, 20_000)
    assert client.status == 302, client.body()[:500]
    assert Document.objects.get(slug="refund-handbook").title == "Refund handbook"


def test_a_file_upload_over_the_upload_limit_is_refused(admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.MAX_UPLOAD_BYTES = 10_000
    client = admin_import(admin_user, 20_000)
    assert client.status == 413
    assert b"limit is 10000 bytes" in client.body()
    assert client.offered == 0
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    "length, status, words",
    [
        ("abc", 400, "not a number"),
        ("", 400, "not a number"),
        ("-5", 400, "must not be negative"),
        ("1e3", 400, "not a number"),
        ("9" * 5000, 413, "limit is"),
    ],
)
@pytest.mark.parametrize("path", ["/api/events/", "/mcp"])
def test_a_malformed_content_length_is_refused_without_reading(path, length, status, words):
    client = request("POST", path, headers=[("content-length", length)], client=Client(endless(10)))
    assert client.status == status
    assert words in client.json()["detail"]
    assert client.offered == 0


def test_conflicting_content_lengths_are_refused():
    lengths = [("content-length", "5"), ("content-length", "7")]
    client = request("POST", "/api/events/", headers=lengths, client=Client(endless(5)))
    assert client.status == 400
    assert "Content-Length" in client.json()["detail"]
    assert client.offered == 0


class StalledClient(Client):
    """Sends the first byte of its body, then nothing more."""

    async def receive(self) -> dict:
        if self.offered >= 1:
            await asyncio.Event().wait()
        return await super().receive()


def test_a_body_that_stops_arriving_gets_a_408(settings):
    settings.REQUEST_BODY_TIMEOUT = 0.2
    client = request(
        "POST",
        "/api/events/",
        headers=[("content-length", "100")],
        client=StalledClient(endless(1)),
    )
    assert client.status == 408
    assert "did not arrive in time" in client.json()["detail"]
    assert client.header(b"connection") == "close"


def test_an_mcp_call_whose_body_stops_arriving_gets_a_408_and_no_traceback(
    requester, settings, caplog
):
    settings.REQUEST_BODY_TIMEOUT = 0.2
    with caplog.at_level(logging.WARNING):
        client = request(
            "POST",
            "/mcp",
            headers=[
                ("authorization", f"Token {token_for(requester)}"),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("content-length", "100"),
            ],
            client=StalledClient(endless(1)),
        )
    assert client.status == 408
    assert client.json()["errors"] == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_mcp_answers_only_post_and_opens_no_stream(requester, method):
    client = request(
        method,
        "/mcp",
        headers=[
            ("authorization", f"Token {token_for(requester)}"),
            ("accept", "text/event-stream, application/json"),
        ],
    )
    assert client.status == 405
    assert client.header(b"allow") == "POST"
    assert "POST" in client.json()["detail"]


def test_a_forged_host_on_the_api_is_a_json_400_logged_in_one_line(requester, caplog):
    with caplog.at_level(logging.WARNING):
        client = request(
            "GET",
            "/api/missions/",
            headers=[("host", "evil.example"), ("authorization", f"Token {token_for(requester)}")],
        )
    assert client.status == 400
    assert "Host" in client.json()["detail"]
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "evil.example" in record.getMessage()


def test_a_forged_host_on_mcp_is_a_json_400_logged_in_one_line(requester, caplog):
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}'
    with caplog.at_level(logging.WARNING):
        client = request(
            "POST",
            "/mcp",
            headers=[
                ("host", "evil.example"),
                ("authorization", f"Token {token_for(requester)}"),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("content-length", str(len(body))),
            ],
            client=Client(lambda n: body if n == 0 else None),
        )
    assert client.status == 400
    assert "Host" in client.json()["detail"]
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "evil.example" in record.getMessage()


def test_a_forged_host_on_a_web_page_keeps_djangos_answer():
    client = request("GET", "/accounts/login/", headers=[("host", "evil.example")])
    assert client.status == 400
    assert client.header(b"content-type").startswith("text/html")


class RawConnection:
    """A socket to the real server whose answer is read by a thread while the test sends, so
    the answer is kept even when the server then resets the connection."""

    def __init__(self, base: str):
        address = urlsplit(base)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=HANG)
        self.answer = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.answer += chunk
        except OSError:
            pass

    def send_until_refused(self, head: bytes, chunk: bytes, most: int) -> int:
        """Send `head`, then `chunk` again and again until the server stops reading or `most`
        bytes are sent; the bytes of body sent."""
        self.sock.sendall(head)
        sent = 0
        try:
            while sent < most:
                self.sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        self.reader.join(HANG)
        self.sock.close()
        return sent


@pytest.mark.services
def test_a_real_server_stops_reading_an_endless_chunked_body(live_web, settings):
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = (
        b"POST /api/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    connection = RawConnection(live_web.url)
    most = 64 * 1024 * 1024
    sent = connection.send_until_refused(head, chunk, most)
    assert connection.answer.startswith(b"HTTP/1.1 413 "), (sent, connection.answer[:200])
    assert b"limit is %d bytes" % settings.DATA_UPLOAD_MAX_MEMORY_SIZE in connection.answer
    assert sent < most, sent


@pytest.mark.services
def test_a_real_server_answers_get_mcp_at_once(live_web, requester):
    headers = {"Authorization": f"Token {token_for(requester)}", "Accept": "text/event-stream"}
    response = httpx.get(f"{live_web.url}/mcp", headers=headers, timeout=HANG)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"] == {}
