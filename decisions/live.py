"""Live hints for open Decision Queue pages: "a decision of your role changed, re-fetch".

A hint carries no data (the page re-fetches its list, which applies permissions) and is sent
to the decision's role group only after the transaction commits. Pushes are at-most-once by
the channel-layer spec, so pages also re-fetch on (re)connect and poll as a fallback.

Publishing follows observations.publish: with a shared layer (Redis) one long-lived thread
per process owns an event loop and its own layer instance, so a sync worker never opens and
closes a loop per push ("Event loop is closed", channels_redis #332) and never waits on Redis.
The in-memory layer only reaches consumers of this process, whose queues belong to the
server's loop, so there the push runs on that loop through `async_to_sync`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers
from django.db import transaction

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "decision.changed"  # handled by DecisionQueueConsumer.decision_changed
MAX_PENDING = 1_000  # hints waiting for the pusher thread; beyond this new ones are dropped
FLUSH_SECONDS = 2.0


def role_group(role_id: int) -> str:
    """The channel-layer group of the people in one role (a Django group id)."""
    return f"decisions-role-{role_id}"


def decision_hint_on_commit(*, decision_id: int, role_id: int, change: str) -> None:
    """Tell the role's open queue pages, once the caller's transaction commits."""
    message = {"type": MESSAGE_TYPE, "decision": decision_id, "change": change}
    transaction.on_commit(lambda: push_hints({role_group(role_id): message}))


def push_hints(messages: dict[str, dict]) -> None:
    """Send one message per group; never raises and, with Redis, never blocks the caller."""
    if not messages or DEFAULT_CHANNEL_LAYER not in channel_layers.configs:
        return
    try:
        layer = channel_layers[DEFAULT_CHANNEL_LAYER]
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(_send)(layer, messages)
        else:
            _pusher().submit(messages)
    except Exception:  # the database has the decision; a lost hint costs a poll's latency
        logger.warning("could not push decision hints to %s", list(messages), exc_info=True)


async def _send(layer, messages: dict[str, dict]) -> None:
    await asyncio.gather(*(layer.group_send(group, msg) for group, msg in messages.items()))


class _Pusher:
    """A daemon thread with its own event loop and channel layer instance, fed by a queue."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._ready = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="decision-hints", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)

    @property
    def alive(self) -> bool:
        return self.pid == os.getpid() and self._thread.is_alive() and self._loop is not None

    def submit(self, messages: dict[str, dict]) -> None:
        if not self.alive:
            raise RuntimeError("the decision hint thread is not running")
        self._loop.call_soon_threadsafe(self._enqueue, messages)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        if not self.alive:
            return True
        done = threading.Event()  # a no-op round trip orders this after every earlier submit
        self._loop.call_soon_threadsafe(done.set)
        return done.wait(timeout) and self._idle.wait(timeout)

    def _enqueue(self, messages: dict[str, dict]) -> None:
        if self._pending >= MAX_PENDING:
            return  # Redis is down or slow: hints are optional, pages poll
        self._pending += 1
        self._idle.clear()
        self._queue.put_nowait(messages)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._queue = asyncio.Queue()
        self._loop = loop
        self._ready.set()
        try:
            loop.run_until_complete(self._drain())
        finally:
            loop.close()

    async def _drain(self) -> None:
        config, layer = None, None
        while True:
            messages = await self._queue.get()
            try:
                if channel_layers.configs.get(DEFAULT_CHANNEL_LAYER) is not config:
                    # First use, or the settings changed (tests): a layer for the new config.
                    config = channel_layers.configs.get(DEFAULT_CHANNEL_LAYER)
                    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                await _send(layer, messages)
            except Exception:
                logger.warning("could not push decision hints", exc_info=True)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()


_lock = threading.Lock()
_instance: _Pusher | None = None


def _pusher() -> _Pusher:
    """This process's pusher; a forked child (Celery prefork) starts its own."""
    global _instance
    with _lock:
        if _instance is None or not _instance.alive:
            _instance = _Pusher()
        return _instance


def hints_flush(timeout: float = FLUSH_SECONDS) -> bool:
    """Send what is still queued in this process (tests and process exit)."""
    current = _instance
    return True if current is None else current.flush(timeout)


atexit.register(hints_flush)
