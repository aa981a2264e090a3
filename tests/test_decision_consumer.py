"""ws/decisions/: only signed-in people; a role's members are told to refresh when a decision
of their role opens or changes, and nobody else is."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from decisions.consumers import CLOSE_UNAUTHENTICATED, DecisionQueueConsumer
from decisions.live import hints_flush
from decisions.models import Decision
from decisions.services import decision_claim
from tests.support.decisions import open_decision

pytestmark = pytest.mark.django_db(transaction=True)


def opened(requester, role: str = "supervisor") -> Decision:
    """A pending decision whose "opened" hint has already gone out."""
    decision = open_decision(requester, "Approve 60", role=role)
    hints_flush()
    return decision


async def connected(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(DecisionQueueConsumer.as_asgi(), "/ws/decisions/")
    communicator.scope["user"] = user
    ok, _ = await communicator.connect()
    assert ok
    assert await communicator.receive_json_from(timeout=5) == {"type": "refresh"}  # on connect
    return communicator


def test_an_anonymous_reader_is_refused():
    async def body():
        communicator = WebsocketCommunicator(DecisionQueueConsumer.as_asgi(), "/ws/decisions/")
        communicator.scope["user"] = AnonymousUser()
        accepted, _ = await communicator.connect()
        closed = await communicator.receive_output(timeout=5)
        # Accepted, then closed: a browser sees the code only on a socket that opened.
        assert accepted and closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}

    async_to_sync(body)()


def test_a_role_member_is_told_when_a_decision_of_the_role_opens(requester, supervisor):
    async def body():
        communicator = await connected(supervisor)
        decision = await database_sync_to_async(opened)(requester)
        hint = await communicator.receive_json_from(timeout=5)
        assert hint == {
            "type": "refresh",
            "decision": decision.id,
            "change": "opened",
            "state": decision.live_state,  # an open page showing this state has nothing to do
        }
        await communicator.disconnect()

    async_to_sync(body)()


def test_a_claim_is_a_hint_too(requester, supervisor):
    async def body():
        decision = await database_sync_to_async(opened)(requester)
        communicator = await connected(supervisor)

        def claim():
            decision_claim(decision=decision, user=supervisor)
            hints_flush()

        await database_sync_to_async(claim)()
        hint = await communicator.receive_json_from(timeout=5)
        assert (hint["decision"], hint["change"]) == (decision.id, "claimed")
        await communicator.disconnect()

    async_to_sync(body)()


def test_other_roles_and_people_without_a_role_hear_nothing(requester, finance, outsider):
    async def body():
        readers = [await connected(finance), await connected(outsider)]
        await database_sync_to_async(opened)(requester, "supervisor")
        for communicator in readers:
            assert await communicator.receive_nothing(timeout=0.5)
            await communicator.disconnect()

    async_to_sync(body)()


@pytest.mark.production
def test_an_idle_connection_outlives_the_layers_blocking_reads(requester, supervisor):
    # channels-redis blocks 5 s per read; a Redis client timing reads out at the same 5 s
    # (redis-py 8's default) killed idle consumers at random. Two read cycles, then a hint.

    async def body():
        communicator = await connected(supervisor)
        await asyncio.sleep(11)
        decision = await database_sync_to_async(opened)(requester)
        hint = await communicator.receive_json_from(timeout=5)
        assert (hint["decision"], hint["change"]) == (decision.id, "opened")
        await communicator.disconnect()

    async_to_sync(body)()
