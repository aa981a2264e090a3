"""The hot path's tasks go to the broker as Celery's own messages: on Redis, `enqueue` writes
what `send_task` writes, into the same list for each priority; elsewhere it is `send_task`.
(Every worker test then runs steps sent this way.)"""

import base64
import json
import uuid

import pytest
from django.conf import settings

from studiox.celery import app
from studiox.task_queue import enqueue, enqueue_many

ON_REDIS = settings.BROKER_URL.startswith(("redis://", "rediss://"))
# Differ between any two messages; the rest must match field for field.
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to", "origin"}


def _held_on_redis(marker: str) -> dict[bytes, list[dict]]:
    import redis

    broker = redis.Redis.from_url(settings.BROKER_URL)
    found: dict[bytes, list[dict]] = {}
    for key in broker.scan_iter(f"{settings.CELERY_TASK_DEFAULT_QUEUE}*"):
        if broker.type(key) != b"list":
            continue
        for raw in broker.lrange(key, 0, -1):
            if marker.encode() in base64.b64decode(json.loads(raw)["body"]):
                found.setdefault(key, []).append(json.loads(raw))
                broker.lrem(key, 0, raw)  # nobody runs these: take them back out
    return found


def _comparable(message: dict) -> dict:
    flat = {**message["headers"], **message["properties"]}
    flat["body"] = json.loads(base64.b64decode(message["body"]))
    flat["content"] = (message["content-type"], message["content-encoding"])
    return {key: value for key, value in flat.items() if key not in PER_MESSAGE}


@pytest.mark.production
@pytest.mark.parametrize("priority", [0, 4, 9])
def test_on_redis_the_message_is_the_one_send_task_writes_in_the_same_list(priority):
    # Registered and bound, as in a worker: the task's time limits then go in the message.
    import missions.tasks  # noqa: F401

    assert "missions.advance" in app.tasks
    marker = f"task-queue-{uuid.uuid4()}"
    enqueue("missions.advance", [marker], priority=priority)
    app.send_task("missions.advance", args=[marker], priority=priority)

    held = _held_on_redis(marker)
    assert len(held) == 1, f"the two messages went to different lists: {list(held)}"
    ((key, (ours, celerys)),) = held.items()
    assert key.endswith(f"\x06\x16{priority}".encode() if priority else b"")
    assert _comparable(ours) == _comparable(celerys)
    assert ours["headers"]["id"] != celerys["headers"]["id"]
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]
    limits = [settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_TASK_SOFT_TIME_LIMIT]
    assert ours["headers"]["timelimit"] == limits


@pytest.mark.production
def test_on_redis_many_tasks_go_in_one_push_and_are_served_in_their_order():
    import redis

    marker = f"task-queue-{uuid.uuid4()}"
    enqueue_many("missions.map_item", [[marker, "items", index] for index in range(3)])
    broker = redis.Redis.from_url(settings.BROKER_URL)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    ours = []
    for raw in broker.lrange(queue, 0, -1):
        if marker.encode() in base64.b64decode(json.loads(raw)["body"]):
            ours.append(json.loads(raw))
            broker.lrem(queue, 0, raw)  # nobody runs these: take them back out
    served_first_to_last = [json.loads(base64.b64decode(m["body"]))[0][2] for m in reversed(ours)]
    assert served_first_to_last == [0, 1, 2]  # kombu pops from the list's tail
    assert len({m["headers"]["id"] for m in ours}) == 3


@pytest.mark.production
def test_on_redis_a_connection_the_server_dropped_is_made_again_and_nothing_is_lost():
    """The client is kept per process: after Redis dropped its connection (a restart, an idle
    timeout), the next message still goes out."""
    import redis

    from studiox import task_queue

    first = f"task-queue-{uuid.uuid4()}"
    enqueue("missions.advance", [first])  # the kept connection now exists
    _held_on_redis(first)  # (and the message is taken back out)
    kept = task_queue._redis_queue().direct
    admin = redis.Redis.from_url(settings.BROKER_URL)
    assert admin.client_kill_filter(_id=kept.execute("CLIENT", "ID")) == 1

    marker = f"task-queue-{uuid.uuid4()}"
    enqueue("missions.advance", [marker])
    assert sum(len(messages) for messages in _held_on_redis(marker).values()) == 1


@pytest.mark.production
def test_on_redis_a_channel_keeps_one_client_for_its_bookkeeping():
    """kombu asks its channel for a client per delivery and per acknowledgement; building one
    each time was a sixth of a worker's main process. The channel here hands out the same one,
    and a new one only with a new pool."""
    with app.connection_for_write() as connection:
        channel = connection.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._disconnect_pools()  # what kombu does after a connection error
        with channel.conn_or_acquire() as after:
            assert after is not first
            assert after.ping()
        channel.close()


@pytest.mark.production
def test_on_redis_a_delivery_is_kept_as_kombu_keeps_it_until_acknowledged():
    """A worker's bookkeeping of what it took (one script per delivery and per
    acknowledgement) is kombu's own layout: kombu restores what was never acknowledged."""
    import redis

    from studiox.broker import RedisQoS

    queue = f"task-queue-{uuid.uuid4()}"
    admin = redis.Redis.from_url(settings.BROKER_URL)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        assert isinstance(channel.qos, RedisQoS)
        channel.queue_declare(queue)
        for body in ("acknowledged", "never acknowledged"):
            channel.basic_publish(channel.prepare_message(body), exchange="", routing_key=queue)
        acknowledged, lost = (channel.basic_get(queue, no_ack=False) for _ in range(2))
        for message in (acknowledged, lost):
            raw, exchange, routing_key = json.loads(
                admin.hget(channel.unacked_key, message.delivery_tag)
            )
            assert raw["properties"]["delivery_tag"] == message.delivery_tag
            assert (exchange, routing_key) == ("", queue)
            assert admin.zscore(channel.unacked_index_key, message.delivery_tag) is not None

        channel.basic_ack(acknowledged.delivery_tag)
        assert not admin.hexists(channel.unacked_key, acknowledged.delivery_tag)
        assert admin.zscore(channel.unacked_index_key, acknowledged.delivery_tag) is None

        channel.qos.restore_by_tag(lost.delivery_tag)  # as after its worker died
        assert not admin.hexists(channel.unacked_key, lost.delivery_tag)
        assert channel.basic_get(queue, no_ack=True).body == lost.body
        channel.queue_delete(queue)
        channel.close()


@pytest.mark.skipif(ON_REDIS, reason="the embedded broker only")
def test_on_the_embedded_broker_it_is_send_task():
    marker = f"task-queue-{uuid.uuid4()}"
    enqueue("missions.advance", [marker], priority=3)
    held = []
    for path in (settings.BROKER_DIR / "out").glob("*.msg"):
        message = json.loads(path.read_text())
        if marker.encode() in base64.b64decode(message["body"]):
            held.append(message)
            path.unlink()  # nobody runs it: take it back out
    assert [message["headers"]["task"] for message in held] == ["missions.advance"]
    assert json.loads(base64.b64decode(held[0]["body"]))[0] == [marker]
