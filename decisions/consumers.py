"""ws/decisions/: tells an approver's open queue and decision pages to re-fetch.

The consumer joins one channel group per role of the user (decisions.live.role_group) and
forwards bare hints: the page re-fetches its list, which applies permissions, so no data
travels here. Hints are at-most-once, so every (re)connect asks for a refresh too.
Clients send nothing: any frame closes the socket (studiox.websockets has the codes).
Close code: 4401 not logged in (after accepting, so that the page sees it and stops
reconnecting).
"""

from channels.db import database_sync_to_async

from decisions.live import role_group
from decisions.selectors import decision_role_ids
from studiox.websockets import StudioConsumer

CLOSE_UNAUTHENTICATED = 4401


class DecisionQueueConsumer(StudioConsumer):
    async def connect(self) -> None:
        # Accept first: a refused handshake reaches the browser as 1006, never as 4401.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close_and_stop(CLOSE_UNAUTHENTICATED)
        role_ids = await database_sync_to_async(decision_role_ids)(user=user)
        for role_id in role_ids:
            await self.join_group(role_group(role_id))
        await self.send_json({"type": "refresh"})  # a (re)connect heals any missed hint

    async def decision_changed(self, message: dict) -> None:
        hint = {key: message.get(key) for key in ("decision", "change", "state")}
        await self.send_json({"type": "refresh", **hint})
