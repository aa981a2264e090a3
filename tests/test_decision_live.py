"""Live hints for queue pages (decisions.live): sent to the role's group only after commit,
from worker threads without an event loop of their own, and never failing the caller."""

import asyncio
import logging
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.db import connection, transaction

from decisions.live import hints_flush, push_hints, role_group
from decisions.models import Decision
from decisions.services import decision_claim, decision_release
from tests.support.decisions import open_decision
from tests.support.rail import run

pytestmark = pytest.mark.django_db(transaction=True)


async def nothing_within(layer, channel: str, seconds: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), timeout=seconds)
    except TimeoutError:
        return True
    return False


def test_nothing_is_pushed_for_an_opening_that_rolls_back(requester, supervisor):
    role_id = supervisor.groups.get(name="supervisor").id

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            open_decision(requester, "Approve never", step="never")
            raise RuntimeError("the checkpoint failed")
        hints_flush()

    def committed() -> int:
        with transaction.atomic():
            decision = open_decision(requester, "Approve kept", step="kept")
        hints_flush()
        return decision.id

    async def body():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(role_group(role_id), channel)
        await database_sync_to_async(rolled_back)()
        assert await nothing_within(layer, channel)
        decision_id = await database_sync_to_async(committed)()
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        await layer.group_discard(role_group(role_id), channel)
        return decision_id, message

    decision_id, message = run(body)
    decision = Decision.objects.get(id=decision_id)
    assert message == {
        "type": "decision.changed",
        "decision": decision_id,
        "change": "opened",
        "state": decision.live_state,
    }
    assert not Decision.objects.filter(step_name="never").exists()


@pytest.mark.production
def test_hints_from_a_worker_thread_keep_arriving(requester, supervisor, caplog):
    """A Celery worker is plain sync code with no event loop; pushing from it many times in a
    row must keep working (the "Event loop is closed" failure of channels_redis #332)."""
    decision = open_decision(requester, "Approve approval")
    hints_flush()  # the "opened" hint goes out before the listener joins
    listener = channel_layers.make_backend("default")
    rounds = 15

    def worker() -> None:
        try:
            for _ in range(rounds):
                decision_claim(decision=decision, user=supervisor)
                decision_release(decision=decision, user=supervisor)
        finally:
            connection.close()  # this thread's own connection, before the database is dropped

    async def body() -> list[str]:
        channel = await listener.new_channel()
        await listener.group_add(role_group(decision.role_id), channel)
        await asyncio.to_thread(worker)
        changes = []
        while len(changes) < 2 * rounds:
            message = await asyncio.wait_for(listener.receive(channel), timeout=10)
            changes.append(message["change"])
        await listener.group_discard(role_group(decision.role_id), channel)
        return changes

    with caplog.at_level(logging.WARNING, logger="observations.publish"):
        changes = run(body)
    assert changes == ["claimed", "released"] * rounds
    assert not caplog.records


def test_an_unreachable_channel_layer_never_fails_the_caller(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens on port 1
        }
    }
    done = threading.Event()

    def worker() -> None:
        push_hints({role_group(1): {"type": "decision.changed", "decision": 1, "change": "x"}})
        push_hints({role_group(2): {"type": "decision.changed", "decision": 2, "change": "y"}})
        done.set()

    with caplog.at_level(logging.WARNING, logger="observations.publish"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=30)
        assert done.is_set()
        assert hints_flush(timeout=30)
    assert "could not push" in caplog.text
