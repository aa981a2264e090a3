"""Redis commands of the hot path, sent over a connection kept for them and spoken to directly.

redis-py's client wraps each command in retries, a pool checkout under its locks, event hooks
and response callbacks: about 100 µs of CPU around an exchange that itself costs about 50 µs.
A step sends a handful of commands (its next task, who follows its observations, the worker's
bookkeeping of deliveries), so those go through `DirectConnection`: one connection per process,
made from the caller's pool (its address, options and credentials), one command at a time (a
web process's request threads take turns: a command holds it for a fraction of a millisecond).

A connection Redis dropped (a restart, an idle timeout) is made again and the command sent once
more, as redis-py's own retry does; so a command sent here may run twice. Every caller's
command bears it: an LPUSH of a task whose duplicate the mission's lease skips, an EXISTS, and
bookkeeping that sets or deletes.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis
from redis.exceptions import ConnectionError, TimeoutError


class DirectConnection:
    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._connection: redis.Connection | None = None
        # A forked child has its parent's socket (never to be shared) and, if another thread
        # held the lock at the fork, a lock nobody will release: it starts afresh.
        kept = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _start_afresh(kept()))

    def execute(self, *args: Any) -> Any:
        with self._lock:
            if self._connection is None:
                self._connection = self.pool.make_connection()
            try:
                self._connection.send_command(*args)
                return self._connection.read_response()
            except (ConnectionError, TimeoutError):
                self._connection.disconnect()
                self._connection.send_command(*args)  # connects again
                return self._connection.read_response()


def _start_afresh(direct: DirectConnection | None) -> None:
    if direct is not None:
        direct._lock, direct._connection = threading.Lock(), None
