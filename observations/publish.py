"""Pushes committed observations to the channel layer. A push is a hint: readers catch up
from the database by sequence number, so a dropped message costs latency, never data."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

RAIL_GROUP = "rail"


def mission_group(mission_id) -> str:
    return f"mission-{mission_id}"


def publish_observations(payloads: list[dict]) -> None:
    layer = get_channel_layer()
    if layer is None or not payloads:
        return
    try:
        async_to_sync(_send_all)(layer, payloads)
    except Exception:  # the database already has it; a lost push only delays a reader
        logger.warning("could not push %d observations", len(payloads), exc_info=True)


async def _send_all(layer, payloads: list[dict]) -> None:
    for payload in payloads:
        message = {"type": "observation.created", "observation": payload}
        await layer.group_send(mission_group(payload["mission_id"]), message)
        await layer.group_send(RAIL_GROUP, message)
