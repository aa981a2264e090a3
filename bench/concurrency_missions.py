"""Missions bench.concurrency_cost runs: the same no-op steps with and without a limit."""

from pydantic import BaseModel, Field

from missions.runtime import mission

GENEROUS_LIMIT = 1000  # above any run's missions: nothing queues, only the bookkeeping shows
QUEUEING_LIMIT = 50  # far above what two worker processes run at once, but missions queue


class StepsInput(BaseModel):
    steps: int = Field(ge=0, le=1000)


def noop() -> None:
    return None


def _steps(ctx, data: StepsInput) -> dict:
    for i in range(data.steps):
        ctx.step(f"s:{i}", noop)
    return {"outcome": "done", "steps": data.steps}


@mission("bench_unlimited", title="No-op steps, no limit", input=StepsInput)
def unlimited(ctx, data: StepsInput) -> dict:
    return _steps(ctx, data)


@mission(
    "bench_limited",
    title="No-op steps, generous limit",
    input=StepsInput,
    concurrency=GENEROUS_LIMIT,
)
def limited(ctx, data: StepsInput) -> dict:
    return _steps(ctx, data)


@mission(
    "bench_queued",
    title="No-op steps, queueing limit",
    input=StepsInput,
    concurrency=QUEUEING_LIMIT,
)
def queued(ctx, data: StepsInput) -> dict:
    return _steps(ctx, data)


@mission("bench_one_at_a_time", title="No-op steps, one at a time", input=StepsInput, concurrency=1)
def one_at_a_time(ctx, data: StepsInput) -> dict:
    return _steps(ctx, data)
