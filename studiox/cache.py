"""Django's Redis cache, with one Redis client (and its connection pool) per process and server.

Django keeps a cache object per request context, and under ASGI every request has a context of
its own: with the stock backend each request built a new pool and opened a new connection to
Redis for its throttle and sign-in checks, and every cache call built a new client. redis-py's
clients and pools are thread-safe and reset themselves in a forked child, so one per server
serves every request of the process.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class SharedClient(RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        server = self._servers[self._get_connection_pool_index(write)]
        client = _clients.get(server)
        if client is None:
            with _clients_lock:
                client = _clients.get(server)
                if client is None:
                    pool = self._pool_class.from_url(server, **self._pool_options)
                    client = _clients[server] = self._client(connection_pool=pool)
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClient
