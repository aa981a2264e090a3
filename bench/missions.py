"""Missions the benchmarks run: no-op steps, so what is measured is the engine."""

from pydantic import BaseModel, Field

from missions.runtime import mission


class NoopInput(BaseModel):
    steps: int = Field(ge=1, le=100_000)


def noop() -> None:
    return None


@mission("bench_noop", version=1, title="No-op steps", input=NoopInput)
def noop_mission(ctx, data: NoopInput) -> dict:
    for i in range(data.steps):
        ctx.step(f"s:{i}", noop)
    return {"outcome": "done", "steps": data.steps}


class WaitInput(BaseModel):
    key: str


@mission("bench_wait", version=1, title="Waits for an event", input=WaitInput)
def wait_mission(ctx, data: WaitInput) -> dict:
    ctx.wait_for_event("signal", event="bench.go", key=data.key)
    ctx.step("after", noop)
    return {"outcome": "done"}


class EffectInput(BaseModel):
    ledger: str
    index: int
    work_ms: int = Field(default=0, ge=0, le=10_000)  # each work step's duration


def work(ms: int) -> None:
    import time

    time.sleep(ms / 1000)


def pay_once(ledger: str, key: str) -> str:
    """An outside side effect that dedupes by idempotency key, as a payment service does:
    every attempt is logged, and a key seen before is not paid again."""
    from pathlib import Path

    path = Path(ledger)
    with path.open("a") as f:
        f.write(f"attempt {key}\n")
    return key


@mission("bench_effects", version=1, title="Side effects under chaos", input=EffectInput)
def effects_mission(ctx, data: EffectInput) -> dict:
    ctx.step("prepare", noop)
    paid = ctx.step("pay", lambda: pay_once(data.ledger, ctx.idempotency_key))
    ctx.transaction("book", book_once, str(ctx.mission_id))
    for i in range(5):
        ctx.step(f"work:{i}", lambda: work(data.work_ms))
    return {"outcome": "done", "paid": paid}


def book_once(mission_id: str) -> int:
    """A database write inside the checkpoint's transaction: must happen exactly once."""
    from django.contrib.auth.models import Group

    return Group.objects.create(name=f"booked-{mission_id}").id


class MapInput(BaseModel):
    items: int = Field(ge=0, le=100_000)
    parallel: bool = True  # ctx.map, or the same items as sequential steps
    work_ms: int = Field(default=0, ge=0, le=10_000)  # each item waits this long (I/O)


@mission("bench_map", version=1, title="Items, parallel or in sequence", input=MapInput)
def map_mission(ctx, data: MapInput) -> dict:
    if data.parallel:
        ctx.map("items", lambda item: work(data.work_ms), range(data.items))
    else:
        for i in range(data.items):
            ctx.step(f"items:{i}", work, data.work_ms)
    return {"outcome": "done", "items": data.items}


@mission("bench_parent", version=1, title="Waits for its child", input=WaitInput)
def parent_mission(ctx, data: WaitInput) -> dict:
    child = ctx.start_mission("child", type="bench_wait", input={"key": data.key})
    ctx.wait_for_missions("children", [child])
    ctx.step("after", noop)
    return {"outcome": "done"}


@mission("bench_decide", version=1, title="Waits for a decision", input=WaitInput)
def decide_mission(ctx, data: WaitInput) -> dict:
    ctx.wait_for_decision("approval", role="bench_approver", title=f"Approve {data.key}")
    ctx.step("after", noop)
    return {"outcome": "done"}
