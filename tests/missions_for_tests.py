"""Missions the engine tests run, also in worker processes (STUDIOX_MISSION_MODULES)."""

import os
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth.models import Group
from pydantic import BaseModel, Field

from missions.runtime import NonRetryableError, RetryPolicy, mission


class CountInput(BaseModel):
    steps: int = Field(ge=0, le=5000)
    marker: str = ""


def record_effect(marker: str, name: str, key: str) -> str:
    """A side effect outside the database: one line per execution in a marker file."""
    with Path(marker).open("a") as f:
        f.write(f"{name} {key}\n")
    return name


def echo(value):
    return value


@mission("test_count", version=1, title="Counting", input=CountInput)
def count(ctx, data: CountInput) -> dict:
    total = 0
    for i in range(data.steps):
        total += ctx.step(f"n:{i}", echo, 1)
    return {"outcome": "counted", "total": total}


class EffectInput(BaseModel):
    marker: str
    block_file: str = ""


def slow_effect(marker: str, block_file: str, key: str) -> str:
    """Records its start, then blocks while `block_file` exists, so a test can kill the worker."""
    with Path(marker).open("a") as f:
        f.write(f"started {key} pid={os.getpid()}\n")
    deadline = time.monotonic() + 120
    while block_file and Path(block_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "done"


def create_group(name: str) -> int:
    return Group.objects.get_or_create(name=name)[0].id


@mission("test_effects", version=1, title="Side effects", input=EffectInput)
def effects(ctx, data: EffectInput) -> dict:
    ctx.step("first", record_effect, data.marker, "first", "k1")
    ctx.step("slow", lambda: slow_effect(data.marker, data.block_file, ctx.idempotency_key))
    group_id = ctx.transaction("create_group", create_group, f"group-{ctx.mission_id}")
    ctx.observe("All effects done", group_id=group_id)
    return {"outcome": "done", "group_id": group_id}


class SleepInput(BaseModel):
    seconds: float = 1.0


@mission("test_sleep", version=1, title="Sleeper", input=SleepInput)
def sleeper(ctx, data: SleepInput) -> dict:
    ctx.step("before", echo, "before")
    ctx.sleep("nap", timedelta(seconds=data.seconds))
    return {"outcome": "rested", "after": ctx.step("after", echo, "after")}


class EventInput(BaseModel):
    key: str
    timeout_seconds: float | None = None


@mission("test_event", version=1, title="Event waiter", input=EventInput)
def event_waiter(ctx, data: EventInput) -> dict:
    ctx.step("prepare", echo, data.key)
    timeout = timedelta(seconds=data.timeout_seconds) if data.timeout_seconds else None
    payload = ctx.wait_for_event("shipment", event="shipped", key=data.key, timeout=timeout)
    return {"outcome": "received" if payload is not None else "timed_out", "payload": payload}


class FlakyInput(BaseModel):
    marker: str
    fail_times: int = 10
    max_attempts: int = 3


def flaky(marker: str, fail_times: int) -> str:
    path = Path(marker)
    attempts = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as f:
        f.write("attempt\n")
    if attempts < fail_times:
        raise ConnectionError(f"upstream unavailable (attempt {attempts + 1})")
    return "ok"


@mission("test_flaky", version=1, title="Flaky", input=FlakyInput)
def flaky_mission(ctx, data: FlakyInput) -> dict:
    policy = RetryPolicy(max_attempts=data.max_attempts, initial_interval=timedelta(0), jitter=0)
    return {"outcome": ctx.step("call", flaky, data.marker, data.fail_times, retry=policy)}


class RefundInput(BaseModel):
    order_id: str
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)


@mission("test_refuse", version=1, title="Refuser", input=RefundInput)
def refuser(ctx, data: RefundInput) -> dict:
    if data.amount > 1000:
        raise NonRetryableError(f"refund of {data.amount} exceeds the limit")
    return {"outcome": "ok", "amount": str(data.amount)}


class HugeInput(BaseModel):
    size: int


@mission("test_huge", version=1, title="Huge result", input=HugeInput)
def huge(ctx, data: HugeInput) -> dict:
    ctx.step("big", lambda: "x" * data.size)
    return {"outcome": "unreachable"}


class ApprovalInput(BaseModel):
    amount: Decimal = Decimal("50")
    timeout_seconds: float | None = None


@mission("test_approval", version=1, title="Approval", input=ApprovalInput)
def approval(ctx, data: ApprovalInput) -> dict:
    timeout = timedelta(seconds=data.timeout_seconds) if data.timeout_seconds else None
    first = ctx.wait_for_decision(
        "supervisor_approval",
        role="supervisor",
        title=f"Approve {data.amount}",
        summary="A test approval",
        context={"amount": str(data.amount)},
        timeout=timeout,
    )
    if first.outcome != "approved":
        return {"outcome": first.outcome, "by": first.decided_by}
    if data.amount > 100:
        second = ctx.wait_for_decision(
            "finance_signoff", role="finance", title=f"Sign off {data.amount}"
        )
        if second.outcome != "approved":
            return {"outcome": second.outcome, "by": second.decided_by}
    ctx.step("after", echo, "paid")
    return {"outcome": "approved", "by": first.decided_by, "comment": first.comment}


class AskInput(BaseModel):
    question: str


@mission("test_llm", version=1, title="Asks a model", input=AskInput)
def ask(ctx, data: AskInput) -> dict:
    answer = ctx.llm(
        "ask",
        messages=[{"role": "user", "content": data.question}],
        schema={
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        },
    )
    ctx.sleep("pause", timedelta(seconds=0))
    ctx.step("after", echo, "after")
    return {"outcome": "answered", "answer": answer["parsed"]["answer"]}
