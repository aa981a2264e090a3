"""For the rail tests: WebSocket readers of the real ASGI stack, missions in a state and
observations committed as the engine writes them."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from missions.models import Mission
from observations.consumers import close_reader_connections
from observations.models import Observation
from observations.services import observation_record

TIMEOUT = 10  # seconds a reader waits for a frame before the test fails


@pytest.fixture(autouse=True)
def readers_let_go_of_the_database():
    yield
    close_reader_connections()  # so the test database can be flushed and dropped


@pytest.fixture
def fast_polls(settings):
    """Pollers that run many times a second: a leaked one shows at once."""
    settings.STUDIOX_LIVE_POLL_SECONDS = 0.05


@pytest.fixture
def slow_polls(settings):
    """Polls too rare to matter within a test: whatever arrives was pushed, not polled."""
    settings.STUDIOX_LIVE_POLL_SECONDS = 3600


def reader(
    path: str,
    cookie: str | None = None,
    *,
    origin: str | None = "http://localhost",
    host: str = "localhost",
    scheme: str = "ws",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> WebsocketCommunicator:
    """A WebSocket client of the real ASGI stack (origin check, sessions, routing); no
    Origin header when `origin` is None."""
    from studiox.asgi import application

    headers = [(b"host", host.encode()), *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    communicator.scope["scheme"] = scheme
    return communicator


def run(coroutine_function, *args):
    """Run an async test body from a sync test (no pytest-asyncio in this project)."""
    return async_to_sync(coroutine_function)(*args)


def mission_for(user, *, title: str = "Counting", status: str = "running", **fields) -> Mission:
    return Mission.objects.create(
        type="test_count",
        version=1,
        title=title,
        input={"steps": 1},
        started_by=user,
        status=status,
        **fields,
    )


def record(mission: Mission, message: str, kind: str = "note", **data) -> Observation:
    """An observation committed as the engine and services write them (pushed after commit)."""
    with transaction.atomic():
        return observation_record(mission=mission, kind=kind, message=message, data=data)


arecord = database_sync_to_async(record)


async def frames_until(communicator: WebsocketCommunicator, predicate, limit: int = 50) -> list:
    """Observation payloads received until `predicate(payload)` holds for one of them."""
    received = []
    for _ in range(limit):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] != "observations":
            continue
        received.extend(frame["observations"])
        if any(predicate(p) for p in frame["observations"]):
            return received
    raise AssertionError(f"no matching observation among {received}")


async def expect_ready(communicator: WebsocketCommunicator) -> int:
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    frame = await communicator.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == "ready", frame
    return frame["seq"]


async def expect_closed(communicator: WebsocketCommunicator) -> int:
    connected, code = await communicator.connect(timeout=TIMEOUT)
    if not connected:
        return code
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output.get("code")
