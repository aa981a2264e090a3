"""Pushes committed observations to the channel layer. A push is a hint: readers catch up
from the database by sequence number, so a dropped message costs latency, never data.

With a shared layer (Redis) one long-lived thread per process owns an event loop and its own
layer instance, so a sync worker never opens and closes a loop per push (the "Event loop is
closed" failure of `async_to_sync(layer.group_send)`, channels_redis #332) and the caller never
waits for Redis. The in-memory layer only reaches consumers of this process, whose queues
belong to the server's loop, so there the push runs on that loop through `async_to_sync`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

RAIL_GROUP = "rail"
MESSAGE_TYPE = "observations.created"
MAX_PENDING = 10_000  # payloads waiting for the publisher; beyond this the oldest are dropped
FLUSH_SECONDS = 2.0  # how long process exit waits for pushes still queued
GATHER_SECONDS = 0.003  # well inside the rail's target: median <= 20 ms


def mission_group(mission_id) -> str:
    return f"mission-{mission_id}"


def group_messages(payloads: list[dict]) -> dict[str, dict]:
    """One message per group: the rail gets every payload, each mission group its own."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for payload in payloads:
        by_group[mission_group(payload["mission_id"])].append(payload)
        by_group[RAIL_GROUP].append(payload)
    return {
        group: {"type": MESSAGE_TYPE, "observations": items} for group, items in by_group.items()
    }


def publish_observations(payloads: list[dict]) -> None:
    """Push payloads (see observation_payload) to the rail and their missions' groups; never
    raises and, with a shared layer, never blocks on the network."""
    if payloads:
        _dispatch(payloads, lambda: group_messages(payloads))


def push_to_groups(messages: dict[str, dict]) -> None:
    """Push ready-made messages (group -> message) the same way: other apps' live hints."""
    if messages:
        _dispatch([{GROUPS_KEY: messages}], lambda: messages)


GROUPS_KEY = "_groups"  # marks a queued item that is ready-made group messages, not a payload


def _dispatch(items: list[dict], messages) -> None:
    if DEFAULT_CHANNEL_LAYER not in channel_layers.configs:
        return
    try:
        layer = channel_layers[DEFAULT_CHANNEL_LAYER]
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(_send)(layer, messages())
        else:
            _publisher().submit(items)
    except Exception:  # the database already has it; a lost push only delays a reader
        logger.warning("could not push %d messages", len(items), exc_info=True)


async def _send(layer, messages: dict[str, dict]) -> None:
    followed = await _followed(layer, list(messages))
    await asyncio.gather(*(layer.group_send(group, messages[group]) for group in followed))


async def _followed(layer, groups: list[str]) -> list[str]:
    """The groups that have members. Most missions run with nobody watching: one pipelined
    count per Redis server spares each unwatched group the two round trips of group_send
    (and the worker the CPU). A member that has expired only costs a group_send, which
    removes it."""
    if not isinstance(layer, RedisChannelLayer):
        return groups
    by_server: dict[int, list[str]] = defaultdict(list)
    for group in groups:
        by_server[layer.consistent_hash(group)].append(group)
    followed = []
    for server, its_groups in by_server.items():
        pipeline = layer.connection(server).pipeline(transaction=False)
        for group in its_groups:
            pipeline.zcard(layer._group_key(group))
        members = await pipeline.execute()
        followed += [group for group, count in zip(its_groups, members, strict=True) if count]
    return followed


class Publisher:
    """A daemon thread with its own event loop and channel layer instance, fed by a queue."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="observation-publisher", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)

    def submit(self, payloads: list[dict]) -> None:
        if self._loop is None or not self._thread.is_alive():
            raise RuntimeError("the observation publisher thread is not running")
        self._loop.call_soon_threadsafe(self._enqueue, payloads)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every submitted payload was sent (or dropped); True if it got there."""
        if self._loop is None or not self._thread.is_alive():
            return True
        # A no-op round trip through the loop orders this after every earlier submit.
        done = threading.Event()
        self._loop.call_soon_threadsafe(done.set)
        return done.wait(timeout) and self._idle.wait(max(0.0, timeout))

    def _enqueue(self, payloads: list[dict]) -> None:
        assert self._queue is not None
        if self._pending + len(payloads) > MAX_PENDING:
            logger.warning("observation publisher is behind; dropping %d pushes", len(payloads))
            return
        self._idle.clear()
        self._pending += len(payloads)
        self._queue.put_nowait(payloads)

    def _mark_idle_if_empty(self) -> None:
        if self._queue is not None and self._queue.empty() and self._pending == 0:
            self._idle.set()

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
        assert self._queue is not None
        config, layer = None, None
        last_warning = 0.0
        while True:
            batch = list(await self._queue.get())
            # A short gathering window: a mission running step after step publishes in batches
            # instead of waking this thread (and taking the GIL from the engine) for every step.
            await asyncio.sleep(GATHER_SECONDS)
            while not self._queue.empty():  # whatever piled up meanwhile goes in one round
                batch.extend(self._queue.get_nowait())
            try:
                if channel_layers.configs.get(DEFAULT_CHANNEL_LAYER) is not config:
                    # First use, or the settings changed (tests): a layer for the new config.
                    config = channel_layers.configs.get(DEFAULT_CHANNEL_LAYER)
                    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                    last_warning = 0.0  # a new layer's first failure is always reported
                payloads = [item for item in batch if GROUPS_KEY not in item]
                if payloads:
                    await _send(layer, group_messages(payloads))
                for item in batch:
                    if GROUPS_KEY in item:
                        await _send(layer, item[GROUPS_KEY])
            except Exception:
                if time.monotonic() - last_warning > 10:  # Redis down: say so, not per push
                    last_warning = time.monotonic()
                    logger.warning("could not push %d observations", len(batch), exc_info=True)
            finally:
                self._pending -= len(batch)
                self._mark_idle_if_empty()


_lock = threading.Lock()
_instance: Publisher | None = None


def _publisher() -> Publisher:
    """This process's publisher; a forked child (Celery prefork) starts its own."""
    global _instance
    current = _instance
    if current is not None and current.pid == os.getpid() and current._thread.is_alive():
        return current
    with _lock:
        if _instance is None or _instance.pid != os.getpid() or not _instance._thread.is_alive():
            _instance = Publisher()
        return _instance


def publisher_flush(timeout: float = FLUSH_SECONDS) -> bool:
    """Send what is still queued in this process (tests, benchmarks and process exit)."""
    current = _instance
    if current is None or current.pid != os.getpid():
        return True
    return current.flush(timeout)


atexit.register(publisher_flush)
