"""ws/decisions/: tells an approver's open queue and decision pages to re-fetch.

The consumer joins one channel group per role of the user (decisions.live.role_group) and
forwards bare hints: the page re-fetches its list, which applies permissions, so no data
travels here. Hints are at-most-once, so every (re)connect asks for a refresh too.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from decisions.live import role_group
from decisions.selectors import decision_role_ids

CLOSE_UNAUTHENTICATED = 4401


class DecisionQueueConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        role_ids = await database_sync_to_async(decision_role_ids)(user=user)
        self.role_groups = [role_group(role_id) for role_id in role_ids]
        for group in self.role_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "refresh"})  # a (re)connect heals any missed hint

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "role_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def decision_changed(self, message: dict) -> None:
        hint = {key: message.get(key) for key in ("decision", "change", "state")}
        await self.send_json({"type": "refresh", **hint})
