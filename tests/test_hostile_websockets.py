"""Hostile WebSocket clients: bad frames, foreign origins, unknown paths, signed-out sockets
and many abrupt clients, all through the real ASGI application (origin check, sessions,
routing). Whatever ends a connection, nothing it started may outlive it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connections

from observations.consumers import READER_THREADS, _readers
from studiox.websockets import (
    CLOSE_BAD_FRAME,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NOT_FOUND,
    CLOSE_UNSUPPORTED_DATA,
)
from tests.support.pages import session_cookie
from tests.support.rail import (  # noqa: F401 - an autouse fixture
    TIMEOUT,
    mission_for,
    reader,
    readers_let_go_of_the_database,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_UNAUTHENTICATED = 4401


def stream_paths(mission) -> list[str]:
    return ["/ws/rail/", f"/ws/missions/{mission.id}/", "/ws/decisions/"]


async def ready(communicator: WebsocketCommunicator) -> None:
    """Connected, and past the first frame (the rail's "ready", the queue's "refresh")."""
    connected, code = await communicator.connect(timeout=TIMEOUT)
    assert connected, code
    await communicator.receive_json_from(timeout=TIMEOUT)


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """The close code the server sent; its application must have ended with it."""
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    await ended_by_itself(communicator)
    return output.get("code")


async def ended_by_itself(communicator: WebsocketCommunicator) -> None:
    """The consumer ran to its end without being cancelled; an exception in it is raised here."""
    await asyncio.wait_for(asyncio.shield(communicator.future), TIMEOUT)


async def tasks_settle_to(baseline: int, attempts: int = 100) -> int:
    """The number of live tasks once it is back to `baseline`, or the last count seen."""
    count = len(asyncio.all_tasks())
    for _ in range(attempts):
        if count <= baseline:
            break
        await asyncio.sleep(0.02)
        count = len(asyncio.all_tasks())
    return count


class ReaderQueries:
    """Counts the SQL the rail's reader threads run (each thread has its own connection)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self._lock:
            self.count += 1
        return execute(sql, params, many, context)

    def _on_every_reader(self, change) -> None:
        barrier = threading.Barrier(READER_THREADS, timeout=5)

        def apply() -> None:
            change(connections["default"].execute_wrappers)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()  # holds this thread so that each call lands on another one

        for future in [_readers.submit(apply) for _ in range(READER_THREADS)]:
            future.result(timeout=10)

    def __enter__(self) -> ReaderQueries:
        self._on_every_reader(lambda wrappers: wrappers.append(self))
        return self

    def __exit__(self, *exc) -> None:
        self._on_every_reader(lambda wrappers: wrappers.remove(self))


# --- bad frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text": "not json"}, CLOSE_BAD_FRAME),
        ({"text": ""}, CLOSE_BAD_FRAME),
        ({"text": "[" * 3000}, CLOSE_BAD_FRAME),  # nested past the parser's recursion
        ({"text": "[1, 2]"}, CLOSE_BAD_FRAME),
        ({"text": '{"after": "x"}'}, CLOSE_BAD_FRAME),
        ({"text": '{"after": Infinity}'}, CLOSE_BAD_FRAME),
        ({"text": " " * 100_000}, CLOSE_MESSAGE_TOO_BIG),
        ({"bytes": b"\x00\xff binary"}, CLOSE_UNSUPPORTED_DATA),
    ],
    ids=["garbage", "empty", "deep", "not-an-object", "bad-after", "infinity", "huge", "binary"],
)
def test_a_bad_frame_closes_the_socket_and_stops_everything_it_started(
    requester, fast_polls, frame, code
):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        baseline = len(asyncio.all_tasks())
        codes = []
        for path in stream_paths(mission):
            communicator = reader(path, cookie)
            await ready(communicator)
            await communicator.send_input({"type": "websocket.receive", **frame})
            codes.append(await closed_with(communicator))
        return codes, baseline, await tasks_settle_to(baseline)

    codes, baseline, after = run(body)
    assert codes == [code] * 3
    assert after == baseline


def test_the_rail_still_takes_a_valid_request_to_resend(requester):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/", cookie)
        await ready(communicator)
        await communicator.send_json_to({"after": 0})
        quiet = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return quiet

    assert run(body)  # nothing to resend, and the socket stays open


def test_an_out_of_range_cursor_is_ignored_not_polled_into_errors(requester, fast_polls, caplog):
    mission = mission_for(requester)
    cookie = session_cookie(requester)
    huge = 10**30

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/?after={huge}", cookie)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        await asyncio.sleep(0.3)  # a few polls
        await communicator.disconnect()
        return connected, frame

    with caplog.at_level(logging.WARNING):
        connected, frame = run(body)
    assert connected and frame["type"] == "ready" and frame["seq"] < huge
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost:9999", "localhost", "ws"),
        ("http://localhost", "localhost:8000", "ws"),
        ("https://localhost", "localhost", "ws"),
        ("http://localhost", "localhost", "wss"),
        ("http://evil.example", "localhost", "ws"),
        ("http://localhost", "evil.example", "ws"),  # a host outside ALLOWED_HOSTS
        ("null", "localhost", "ws"),
        (None, "localhost", "ws"),
    ],
    ids=["port", "host-port", "https-on-ws", "http-on-wss", "other", "bad-host", "null", "none"],
)
def test_a_foreign_origin_is_refused_even_with_a_valid_session(requester, origin, host, scheme):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        refused = []
        for path in stream_paths(mission):
            communicator = reader(path, cookie, origin=origin, host=host, scheme=scheme)
            connected, _ = await communicator.connect(timeout=TIMEOUT)
            refused.append(not connected)
            await communicator.disconnect()
        return refused

    assert run(body) == [True, True, True]


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost", "localhost", "ws"),
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
        ("https://localhost", "localhost", "wss"),
        ("https://localhost:443", "localhost", "wss"),  # the default port, spelled out
        ("https://studiox.example.com", "localhost", "ws"),  # a TLS proxy's trusted origin
        ("https://eu.apps.example.com", "localhost", "ws"),  # a trusted wildcard
    ],
    ids=["same", "port", "ip", "wss", "default-port", "trusted", "wildcard"],
)
def test_the_sites_own_origin_and_trusted_origins_are_accepted(
    requester, settings, origin, host, scheme
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://studiox.example.com", "https://*.apps.example.com"]
    cookie = session_cookie(requester)

    async def body():
        communicator = reader("/ws/decisions/", cookie, origin=origin, host=host, scheme=scheme)
        await ready(communicator)
        await communicator.disconnect()

    run(body)


@pytest.mark.parametrize(("forwarded", "accepted"), [("https", True), ("http", False)])
def test_behind_a_tls_proxy_the_page_origin_is_https(requester, settings, forwarded, accepted):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = session_cookie(requester)

    async def body():
        proxy = ((b"x-forwarded-proto", forwarded.encode()),)
        communicator = reader("/ws/decisions/", cookie, origin="https://localhost", extra=proxy)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        await communicator.disconnect()
        return connected

    assert run(body) is accepted


# --- unknown paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ws/nothing/", "/ws/missions/not-a-uuid/", "/ws/rail/extra/", "/", "/api/missions/"]
)
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_an_unknown_path_is_closed_with_4404_quietly(requester, caplog, path, signed_in):
    cookie = session_cookie(requester) if signed_in else None

    async def body():
        communicator = reader(path, cookie)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        code = await closed_with(communicator)
        return connected, code

    with caplog.at_level(logging.INFO):
        connected, code = run(body)
    # Accepted first: a browser only sees a close code on a socket that opened.
    assert connected and code == CLOSE_NOT_FOUND
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- signed out -------------------------------------------------------------------------


def test_the_decision_queue_accepts_before_it_closes_a_signed_out_reader():
    async def body():
        communicator = reader("/ws/decisions/")
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        code = await closed_with(communicator)
        return connected, code

    assert run(body) == (True, CLOSE_UNAUTHENTICATED)


# --- abuse ------------------------------------------------------------------------------

ABUSERS = 50
SETTLE_SECONDS = 1.0  # twenty poll intervals of fast_polls


def test_fifty_abusive_clients_leave_no_task_poller_or_log_flood_behind(
    requester, supervisor, fast_polls, caplog
):
    mission = mission_for(requester)
    cookies = {"requester": session_cookie(requester), "supervisor": session_cookie(supervisor)}
    paths = ["/ws/rail/", f"/ws/missions/{mission.id}/", "/ws/decisions/"]
    endings = ["garbage", "binary", "vanish", "cancel"]

    async def abuse(n: int) -> None:
        path = paths[n % len(paths)]
        cookie = cookies["supervisor" if path == "/ws/decisions/" else "requester"]
        communicator = reader(path, cookie)
        await ready(communicator)
        ending = endings[n % len(endings)]
        if ending == "garbage":
            await communicator.send_to(text_data="}{ not json \x00")
        elif ending == "binary":
            await communicator.send_to(bytes_data=b"\x89PNG\r\n")
        if ending == "cancel":  # the server shuts down under the connection
            communicator.future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await communicator.future
        else:  # the client goes away without a closing handshake
            await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
            await ended_by_itself(communicator)

    async def body():
        await abuse(0)  # warm up: the layer's and the readers' one-off tasks exist from now on
        baseline = len(asyncio.all_tasks())
        await asyncio.gather(*(abuse(n) for n in range(ABUSERS)))
        after = await tasks_settle_to(baseline)
        with ReaderQueries() as queries:
            await asyncio.sleep(SETTLE_SECONDS)
        return baseline, after, queries.count

    with caplog.at_level(logging.INFO):
        baseline, after, queries = run(body)
    assert after == baseline
    assert queries == 0
    assert len(caplog.records) < 5, [r.getMessage() for r in caplog.records]
