"""The Redis cache opens its connections once per process, not once per request: under ASGI
every request has a cache object of its own (a context of its own), and each used to build a
new pool and connect to Redis again for its throttle and sign-in checks."""

import asyncio
import contextvars

import pytest
import redis
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.test import override_settings

REDIS_URL = "redis://127.0.0.1:6379/7"
REQUESTS = 20


def connections_received() -> int:
    return redis.Redis.from_url(REDIS_URL).info("stats")["total_connections_received"]


@pytest.fixture
def redis_cache():
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis")
    config = {"BACKEND": "studiox.cache.SharedClientRedisCache", "LOCATION": REDIS_URL}
    with override_settings(CACHES={"default": config}):
        yield


def one_request_cache_use() -> None:
    # What a request's throttle and sign-in check do: read through the request's cache object.
    caches["default"].get("studiox-test:lockout")


async def requests_each_in_a_context_of_its_own(count: int) -> None:
    for _ in range(count):
        # A context of its own, as each request has under uvicorn.
        await asyncio.get_running_loop().create_task(
            sync_to_async(one_request_cache_use)(), context=contextvars.Context()
        )


def test_requests_in_contexts_of_their_own_share_the_processes_connections(redis_cache):
    asyncio.run(requests_each_in_a_context_of_its_own(1))  # the process's pool connects
    before = connections_received()
    asyncio.run(requests_each_in_a_context_of_its_own(REQUESTS))
    opened = connections_received() - before
    assert opened <= 2, f"{REQUESTS} requests opened {opened} new Redis connections"
