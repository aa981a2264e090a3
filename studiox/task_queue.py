"""Sending the tasks of the hot path (a mission's next step, a map item) to the broker.

`app.send_task` costs about 0.5 ms of CPU per message (options, routing, a result object,
kombu's producer, a new Redis client per message): as much as the rest of a step's own work
in a worker, and a tenth of a mission start in the web. On a Redis broker `enqueue` writes the
message Celery itself would (task protocol 2, kombu's envelope) with one LPUSH into the list
kombu serves for that priority, over a connection kept per process (studiox.redis_direct).
Any other broker gets
`send_task`. A message that cannot be sent raises; the callers' scheduler backstop resends.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kombu.transport import redis as kombu_redis

from studiox.celery import app
from studiox.redis_direct import DirectConnection

# What every message of these tasks carries besides its task name, id and arguments.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True)
class _RedisQueue:
    connection: Any  # kombu.Connection, kept open for the channel
    channel: kombu_redis.Channel
    direct: DirectConnection  # over the channel's pool: the broker URL's address and options
    origin: str


_queues: dict[int, _RedisQueue | None] = {}  # by process id: a forked child builds its own
_lock = threading.Lock()


def enqueue(name: str, args: list, *, priority: int = 0) -> None:
    """Send task `name` with positional `args` to the default queue; broker `priority` 0 is
    served first (kombu's Redis order)."""
    enqueue_many(name, [args], priority=priority)


def enqueue_many(name: str, args_list: list[list], *, priority: int = 0) -> None:
    """One task `name` per item of `args_list`; on Redis in one round trip (a map's items)."""
    queue = _redis_queue()
    if queue is None:
        for args in args_list:
            app.send_task(name, args=args, priority=priority)
        return
    queue_name = settings.CELERY_TASK_DEFAULT_QUEUE
    messages = [
        _message(name, args, priority=priority, queue=queue_name, origin=queue.origin)
        for args in args_list
    ]
    if messages:
        key = queue.channel.global_keyprefix + queue.channel._q_for_pri(queue_name, priority)
        queue.direct.execute("LPUSH", key, *messages)


def _redis_queue() -> _RedisQueue | None:
    pid = os.getpid()
    if pid not in _queues:
        with _lock:
            if pid not in _queues:
                _queues.clear()
                _queues[pid] = _connect()
    return _queues[pid]


def _connect() -> _RedisQueue | None:
    connection = app.connection_for_write()
    if connection.transport.driver_type != "redis":
        connection.release()
        return None
    channel = connection.channel()  # kombu's Redis channel pings: an error here, not a hang
    return _RedisQueue(
        connection=connection,
        channel=channel,
        direct=DirectConnection(channel.pool),
        origin=f"gen{os.getpid()}@{socket.gethostname()}",  # as Celery names a sender
    )


def _time_limits(name: str) -> list[int | None]:
    """What send_task writes: the task's own limits where this process has it registered
    (a worker), else none (the worker applies its own); the registry is read as send_task
    reads it, without loading every task module."""
    task = app._tasks.get(name)
    return [getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None)]


def _message(name: str, args: list, *, priority: int, queue: str, origin: str) -> str:
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    headers = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": _time_limits(name),
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": origin,
        "ignore_result": None,  # the task's own setting
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": task_id,
        "reply_to": "",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": priority,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
    )
