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
