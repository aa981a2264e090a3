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
import queue
import threading
import time
from collections import defaultdict

import redis
import redis.sentinel
from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers
from channels_redis.core import RedisChannelLayer

from studiox.redis_direct import DirectConnection

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
    await asyncio.gather(*(layer.group_send(group, message) for group, message in messages.items()))


class _Followers:
    """Which groups have members, asked of the layer's Redis servers with a plain (sync)
    client. Most missions run with nobody watching: one EXISTS per server spares each
    unwatched group the two round trips of group_send, and this thread its event loop. A
    group's key is its sorted set of members, gone when the last one leaves; a member that
    has expired only costs a group_send, which removes it."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        pools = [_sync_pool(host) for host in layer.hosts]
        self.clients = [redis.Redis(connection_pool=pool) for pool in pools]
        self.direct = [DirectConnection(pool) for pool in pools]  # for the common case

    def followed(self, groups: list[str]) -> set[str]:
        by_server: dict[int, list[str]] = defaultdict(list)
        for group in groups:
            by_server[self.layer.consistent_hash(group)].append(group)
        followed: set[str] = set()
        for server, its_groups in by_server.items():
            keys = [self.layer._group_key(group) for group in its_groups]
            if not self.direct[server].execute("EXISTS", *keys):  # the common case: nobody
                continue
            pipeline = self.clients[server].pipeline(transaction=False)
            for key in keys:
                pipeline.exists(key)
            held = pipeline.execute()
            followed.update(group for group, count in zip(its_groups, held, strict=True) if count)
        return followed


def _sync_pool(host: dict) -> redis.ConnectionPool:
    """channels_redis.utils.create_pool, for a sync client."""
    host = dict(host)
    if "address" in host:
        return redis.ConnectionPool.from_url(host.pop("address"), **host)
    if "master_name" in host:
        sentinel = redis.sentinel.Sentinel(
            host.pop("sentinels"), sentinel_kwargs=host.pop("sentinel_kwargs", None)
        )
        return redis.sentinel.SentinelConnectionPool(host.pop("master_name"), sentinel, **host)
    return redis.ConnectionPool(**host)


def _rounds(batch: list[dict]) -> list[dict[str, dict]]:
    """What a batch sends, round after round: its observations grouped, then each
    ready-made set of group messages (push_to_groups) as it came."""
    payloads = [item for item in batch if GROUPS_KEY not in item]
    ready_made = [item[GROUPS_KEY] for item in batch if GROUPS_KEY in item]
    return ([group_messages(payloads)] if payloads else []) + ready_made


class Publisher:
    """A daemon thread fed by a queue, with its own channel layer instance and an event loop
    that runs only for the groups someone follows."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._queue: queue.SimpleQueue[list[dict]] = queue.SimpleQueue()
        self._counting = threading.Lock()
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="observation-publisher", daemon=True)
        self._thread.start()

    def submit(self, payloads: list[dict]) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the observation publisher thread is not running")
        with self._counting:
            if self._pending + len(payloads) > MAX_PENDING:
                logger.warning("observation publisher is behind; dropping %d pushes", len(payloads))
                return
            self._pending += len(payloads)
            self._idle.clear()
        self._queue.put(payloads)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every submitted payload was sent (or dropped); True if it got there."""
        return not self._thread.is_alive() or self._idle.wait(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        config, layer, followers = None, None, None
        last_warning = 0.0
        while True:
            batch = list(self._queue.get())
            # A short gathering window: a mission running step after step publishes in batches
            # instead of waking this thread (and taking the GIL from the engine) for every step.
            time.sleep(GATHER_SECONDS)
            while not self._queue.empty():  # whatever piled up meanwhile goes in one round
                batch.extend(self._queue.get_nowait())
            try:
                if channel_layers.configs.get(DEFAULT_CHANNEL_LAYER) is not config:
                    # First use, or the settings changed (tests): a layer for the new config.
                    config = channel_layers.configs.get(DEFAULT_CHANNEL_LAYER)
                    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                    followers = _Followers(layer) if isinstance(layer, RedisChannelLayer) else None
                    last_warning = 0.0  # a new layer's first failure is always reported
                rounds = _rounds(batch)
                groups = sorted({group for messages in rounds for group in messages})
                followed = followers.followed(groups) if followers else set(groups)
                for messages in rounds:
                    chosen = {g: message for g, message in messages.items() if g in followed}
                    if chosen:
                        loop.run_until_complete(_send(layer, chosen))
            except Exception:
                if time.monotonic() - last_warning > 10:  # Redis down: say so, not per push
                    last_warning = time.monotonic()
                    logger.warning("could not push %d observations", len(batch), exc_info=True)
            finally:
                with self._counting:
                    self._pending -= len(batch)
                    if self._pending == 0:
                        self._idle.set()


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
