"""Hostile WebSocket clients against a real server (uvicorn on loopback): the close codes a
browser would see, and no traceback in the server's log."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from studiox.websockets import CLOSE_BAD_FRAME, CLOSE_NOT_FOUND, CLOSE_UNSUPPORTED_DATA
from tests.support.pages import session_cookie
from tests.support.processes import eventually
from tests.support.rail import mission_for, run

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_UNAUTHENTICATED = 4401
TIMEOUT = 10


async def close_code(url: str, origin: str, cookie: str | None = None, frame=None) -> int:
    """Open `url`, send `frame` if any, and return the code the server closes with."""
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
    async with connect(url, origin=origin, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        if frame is not None:
            await ws.send(frame)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006


def test_a_real_client_sees_each_close_code_and_the_server_logs_no_traceback(live_web, requester):
    mission = mission_for(requester)
    cookie = session_cookie(requester)
    origin = live_web.url
    base = live_web.url.replace("http://", "ws://")

    async def body():
        return [
            await close_code(f"{base}/ws/nothing/", origin),
            await close_code(f"{base}/ws/missions/not-a-uuid/", origin, cookie),
            await close_code(f"{base}/ws/decisions/", origin),
            await close_code(f"{base}/ws/rail/", origin, cookie, "not json"),
            await close_code(f"{base}/ws/missions/{mission.id}/", origin, cookie, b"\x00\x01"),
        ]

    codes = run(body)
    assert codes == [
        CLOSE_NOT_FOUND,
        CLOSE_NOT_FOUND,
        CLOSE_UNAUTHENTICATED,
        CLOSE_BAD_FRAME,
        CLOSE_UNSUPPORTED_DATA,
    ]
    log = live_web.log()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_a_real_server_refuses_a_foreign_origin_at_the_handshake(live_web, requester):
    cookie = session_cookie(requester)
    base = live_web.url.replace("http://", "ws://")
    port = int(live_web.url.rsplit(":", 1)[1])

    async def body():
        try:
            await close_code(f"{base}/ws/rail/", f"http://127.0.0.1:{port + 1}", cookie)
        except InvalidStatus as refused:
            return refused.response.status_code
        return None

    assert run(body) == 403
    live_web.stop()
    assert "Waiting for background tasks" not in live_web.log(), live_web.log()


def layer_reads_blocked_in_redis() -> int:
    """This test runner's channel-layer connections parked in a blocking read (other runners'
    live pages share the Redis database)."""
    import redis

    client = redis.Redis.from_url(settings.CHANNEL_LAYER_URL)
    try:
        return sum(
            1
            for c in client.client_list()
            if c["name"] == settings.CHANNEL_PREFIX and c["cmd"] == "bzpopmin"
        )
    finally:
        client.close()


@pytest.mark.production
def test_refused_and_closed_sockets_leave_no_read_behind_in_redis(live_web, requester):
    # A channel-layer read cancelled just as it starts can lose its cancel (see
    # studiox.websockets._cancel_all) and then block on Redis for the life of the server.
    mission = mission_for(requester)
    cookie = session_cookie(requester)
    origin = live_web.url
    base = live_web.url.replace("http://", "ws://")

    async def body():
        for _ in range(10):
            await close_code(f"{base}/ws/nothing/", origin)
            await close_code(f"{base}/ws/decisions/", origin)
            await close_code(f"{base}/ws/rail/", origin, cookie, "not json")
            await close_code(f"{base}/ws/missions/{mission.id}/", origin, cookie, b"\x00")

    async def an_open_page_is_counted() -> bool:
        headers = {"Cookie": f"sessionid={cookie}"}
        async with connect(f"{base}/ws/rail/", origin=origin, additional_headers=headers):
            for _ in range(100):
                if layer_reads_blocked_in_redis():
                    return True
                await asyncio.sleep(0.1)
        return False

    assert run(an_open_page_is_counted), "an open page's read is what this test counts"
    run(body)
    eventually(
        lambda: layer_reads_blocked_in_redis() == 0, what="no read left in Redis", attempts=100
    )
    live_web.stop()
    assert "Waiting for background tasks" not in live_web.log(), live_web.log()
