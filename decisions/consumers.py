"""ws/decisions/: tells an approver's open queue page to refresh when work may have changed.

It forwards no data, only a hint; the page re-fetches its list, which applies permissions.
The hint rides on the rail's pushes (a decision opens or closes with a rail observation).
"""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from observations.publish import RAIL_GROUP

QUEUE_KINDS = {"waiting", "decision_made", "cancelled", "resumed", "verdict"}
CLOSE_UNAUTHENTICATED = 4401


class DecisionQueueConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(RAIL_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"type": "refresh"})  # a (re)connect heals any missed push

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(RAIL_GROUP, self.channel_name)

    async def observations_created(self, message: dict) -> None:
        if any(line.get("kind") in QUEUE_KINDS for line in message.get("observations", [])):
            await self.send_json({"type": "refresh"})
