"""ws/decisions/: only signed-in people, and a refresh hint when a decision opens."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from decisions.consumers import DecisionQueueConsumer
from observations.publish import RAIL_GROUP

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(DecisionQueueConsumer.as_asgi(), "/ws/decisions/")
    communicator.scope["user"] = user
    return communicator


def test_an_anonymous_reader_is_refused():
    async def body():
        communicator = await connect(AnonymousUser())
        connected, code = await communicator.connect()
        assert not connected and code == 4401

    async_to_sync(body)()


def test_a_signed_in_approver_is_told_to_refresh_when_a_decision_opens(supervisor):
    async_to_sync(_approver_gets_hints)(supervisor)


async def _approver_gets_hints(supervisor):
    from channels.layers import get_channel_layer

    communicator = await connect(supervisor)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from(timeout=5) == {"type": "refresh"}  # on connect
    layer = get_channel_layer()
    note = {"type": "observations.created", "observations": [{"kind": "note"}]}
    await layer.group_send(RAIL_GROUP, note)
    assert await communicator.receive_nothing(timeout=0.5)  # a plain note changes no queue
    waiting = {"type": "observations.created", "observations": [{"kind": "waiting"}]}
    await layer.group_send(RAIL_GROUP, waiting)
    assert await communicator.receive_json_from(timeout=5) == {"type": "refresh"}
    await communicator.disconnect()
