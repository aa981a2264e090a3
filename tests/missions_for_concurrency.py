"""Mission types with concurrency limits, for the concurrency tests and worker processes
(STUDIOX_MISSION_MODULES=tests.missions_for_tests,tests.missions_for_concurrency)."""

import time

from pydantic import BaseModel, Field

from missions.runtime import NonRetryableError, mission

LIMIT = 5


class WorkInput(BaseModel):
    customer: str = "C-1"
    steps: int = Field(default=1, ge=0, le=50)
    pause_ms: int = Field(default=0, ge=0, le=2000)
    fail: bool = False


def work(index: int, pause_ms: int) -> int:
    time.sleep(pause_ms / 1000)  # some work a worker holds the slot for
    return index


@mission("test_limited", title="Limited work", input=WorkInput, concurrency=LIMIT)
def limited(ctx, data: WorkInput) -> dict:
    """At most LIMIT at once, across the whole type."""
    for index in range(data.steps):
        ctx.step(f"work:{index}", work, index, data.pause_ms)
    if data.fail:
        raise NonRetryableError("asked to fail")
    return {"outcome": "done", "steps": data.steps}


@mission(
    "test_per_customer",
    title="Refund",
    input=WorkInput,
    concurrency=1,
    concurrency_key=lambda data: data.customer,
)
def per_customer(ctx, data: WorkInput) -> dict:
    """One at a time per customer; it holds its slot while it waits for its event."""
    ctx.wait_for_event("go", event="go", key=data.customer)
    return {"outcome": "done", "customer": data.customer}


@mission("test_unlimited_work", title="Unlimited work", input=WorkInput)
def unlimited(ctx, data: WorkInput) -> dict:
    """The same work as test_limited without a limit (the benchmark's baseline)."""
    for index in range(data.steps):
        ctx.step(f"work:{index}", work, index, data.pause_ms)
    return {"outcome": "done", "steps": data.steps}


class ParentInput(BaseModel):
    child_priority: int = 0


@mission("test_limited_parent", title="Starts limited work", input=ParentInput)
def limited_parent(ctx, data: ParentInput) -> dict:
    child = ctx.start_mission("child", type="test_limited", input={}, priority=data.child_priority)
    return {"outcome": "started", "child": child}
