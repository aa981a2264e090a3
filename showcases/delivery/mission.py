"""A delivery confirmation: the smallest mission that waits for an external event (README,
"API": the events example starts one and sends its event).

It waits for the carrier's `parcel.delivered` event for the order (correlation key: the order
id), up to `days` days, and returns `delivered` with what the carrier said, or `not_delivered`.
An event sent before the mission got to its wait is kept and taken, not lost.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from missions.runtime import Verdict, mission

DELIVERED_EVENT = "parcel.delivered"


class DeliveryRequest(BaseModel):
    order_id: str = Field(min_length=1, max_length=50, description="the order shipped, e.g. A-1001")
    days: int = Field(default=14, ge=1, le=90, description="how long to wait for the carrier")


@mission("delivery_confirmation", version=1, title="Delivery confirmation", input=DeliveryRequest)
def delivery_confirmation(ctx, request: DeliveryRequest) -> Verdict:
    """Wait for the carrier to report the order delivered."""
    ctx.observe(f"Waiting for the carrier to deliver {request.order_id}")
    delivered = ctx.wait_for_event(
        "delivered",
        event=DELIVERED_EVENT,
        key=request.order_id,
        timeout=timedelta(days=request.days),
    )
    if delivered is None:
        return Verdict(
            outcome="not_delivered",
            summary=f"{request.order_id} not reported delivered within {request.days} days",
        )
    carrier = str(delivered.get("carrier", "")) if isinstance(delivered, dict) else ""
    by_carrier = f" by {carrier}" if carrier else ""
    ctx.observe(f"{request.order_id} delivered{by_carrier}")
    return Verdict(
        outcome="delivered",
        summary=f"{request.order_id} delivered{by_carrier}",
        details={"order_id": request.order_id, "event": delivered},
    )
