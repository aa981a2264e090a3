"""Pushing committed observations: from worker threads, without waiting on the network,
and without ever failing the caller."""

import asyncio
import logging
import threading

import pytest
from channels.layers import channel_layers
from channels_redis.core import RedisChannelLayer
from django.db import connection, transaction

from observations.publish import (
    RAIL_GROUP,
    group_messages,
    mission_group,
    publish_observations,
    publisher_flush,
)
from observations.services import observation_record
from tests.support.rail import mission_for, run

pytestmark = pytest.mark.django_db(transaction=True)


def payload(seq: int, mission_id: str = "m1") -> dict:
    return {"seq": seq, "mission_id": mission_id, "kind": "note", "message": f"line {seq}"}


def test_each_mission_group_gets_its_lines_and_the_rail_gets_all():
    messages = group_messages([payload(1, "a"), payload(2, "b"), payload(3, "a")])
    assert set(messages) == {mission_group("a"), mission_group("b"), RAIL_GROUP}
    assert [p["seq"] for p in messages[mission_group("a")]["observations"]] == [1, 3]
    assert [p["seq"] for p in messages[RAIL_GROUP]["observations"]] == [1, 2, 3]
    assert all(m["type"] == "observations.created" for m in messages.values())


def redis_layer() -> None:
    """The embedded default's in-memory layer only reaches this process: these tests are
    marked `production` and run where the channel layer is Redis."""


@pytest.mark.production
def test_commits_in_a_worker_thread_reach_the_mission_group(requester, caplog):
    """A Celery worker is plain sync code with no event loop; pushing from it many times in a
    row must keep working (the "Event loop is closed" failure of channels_redis #332)."""
    redis_layer()
    mission = mission_for(requester)
    listener = channel_layers.make_backend("default")
    commits = 30

    def worker() -> list[int]:
        seqs = []
        try:
            for i in range(commits):
                with transaction.atomic():
                    observation = observation_record(mission=mission, kind="note", message=f"{i}")
                seqs.append(observation.id)
        finally:
            connection.close()  # this thread's own connection, before the database is dropped
        return seqs

    async def body():
        channel = await listener.new_channel()
        await listener.group_add(mission_group(mission.id), channel)
        seqs = await asyncio.to_thread(worker)
        received = []
        while len(received) < commits:
            message = await asyncio.wait_for(listener.receive(channel), timeout=10)
            received += [p["seq"] for p in message["observations"]]
        await listener.group_discard(mission_group(mission.id), channel)
        return seqs, received

    with caplog.at_level(logging.WARNING, logger="observations.publish"):
        seqs, received = run(body)
    assert sorted(received) == seqs
    assert not caplog.records


@pytest.mark.production
def test_an_unreachable_channel_layer_never_fails_the_caller(settings, caplog):
    redis_layer()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens on port 1
        }
    }
    done = threading.Event()

    def worker():
        publish_observations([payload(1)])
        publish_observations([payload(2)])
        done.set()

    with caplog.at_level(logging.WARNING, logger="observations.publish"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=30)
        assert done.is_set()
        publisher_flush(timeout=30)
    assert "could not push" in caplog.text


def test_nothing_is_pushed_for_a_transaction_that_rolls_back(requester, monkeypatch):
    mission = mission_for(requester)
    pushed = []
    monkeypatch.setattr("observations.services.publish_observations", pushed.append)
    with pytest.raises(RuntimeError), transaction.atomic():
        observation_record(mission=mission, kind="note", message="never committed")
        raise RuntimeError("rolled back")
    with transaction.atomic():
        observation_record(mission=mission, kind="note", message="committed")
    assert [[p["message"] for p in batch] for batch in pushed] == [["committed"]]


@pytest.mark.production
def test_only_groups_someone_follows_are_sent_to(monkeypatch):
    """One count per batch finds the followed groups; nobody's groups cost no group_send."""
    redis_layer()
    sent_to = []
    real_group_send = RedisChannelLayer.group_send

    async def recording_group_send(self, group, message):
        sent_to.append(group)
        await real_group_send(self, group, message)

    monkeypatch.setattr(RedisChannelLayer, "group_send", recording_group_send)
    listener = channel_layers.make_backend("default")

    async def body():
        channel = await listener.new_channel()
        await listener.group_add(mission_group("watched"), channel)
        try:
            publish_observations([payload(1, "watched"), payload(2, "unwatched")])
            message = await asyncio.wait_for(listener.receive(channel), timeout=10)
            await asyncio.to_thread(publisher_flush)
            return message
        finally:
            await listener.group_discard(mission_group("watched"), channel)

    message = run(body)
    assert [p["seq"] for p in message["observations"]] == [1]
    assert sent_to == [mission_group("watched")]
