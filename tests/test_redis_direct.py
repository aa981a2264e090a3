"""The hot path's Redis connection (studiox.redis_direct): one per process, shared by its
threads one command at a time, never shared with a forked child, made again when dropped."""

import os
import threading
import uuid

import pytest
import redis
from django.conf import settings

from studiox.redis_direct import DirectConnection

pytestmark = pytest.mark.production  # Redis itself


@pytest.fixture
def direct():
    pool = redis.ConnectionPool.from_url(settings.BROKER_URL)
    yield DirectConnection(pool)
    pool.disconnect()


def test_threads_share_one_connection_and_every_command_gets_its_own_answer(direct):
    key = f"direct-{uuid.uuid4()}"
    answers: list[int] = []

    def client():
        answers.extend(direct.execute("INCR", key) for _ in range(50))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == list(range(1, 401))  # no answer read by the wrong thread
    assert direct.pool._created_connections == 1
    direct.execute("DEL", key)


def test_a_forked_child_makes_its_own_connection(direct):
    parent_id = direct.execute("CLIENT", "ID")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's answer is asserted below
        try:
            os.write(write_end, str(direct.execute("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as answer:
        child_id = int(answer.read())
    assert child_id != parent_id
    assert direct.execute("CLIENT", "ID") == parent_id  # the parent's is untouched


def test_a_connection_redis_dropped_is_made_again(direct):
    admin = redis.Redis.from_url(settings.BROKER_URL)
    assert admin.client_kill_filter(_id=direct.execute("CLIENT", "ID")) == 1
    assert direct.execute("PING") == b"PONG"
