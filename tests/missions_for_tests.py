"""Missions the engine tests run, also in worker processes (STUDIOX_MISSION_MODULES)."""

import os
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth.models import Group
from pydantic import BaseModel, Field

from missions.runtime import (
    Decision,
    Event,
    MissionDone,
    NonRetryableError,
    RetryPolicy,
    Timer,
    mission,
)


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


class ParentInput(BaseModel):
    children: int = Field(default=2, ge=0, le=100)
    child_type: str = "test_count"
    child_input: dict = Field(default_factory=lambda: {"steps": 1})
    failing_child: int = -1  # this child is refused a refund: it fails
    marker: str = ""  # set: a step after the wait fails its first `fail_times` attempts
    fail_times: int = 0
    timeout_seconds: float | None = None


@mission("test_parent", version=1, title="Parent", input=ParentInput)
def parent(ctx, data: ParentInput) -> dict:
    ids = []
    for i in range(data.children):
        if i == data.failing_child:
            child = ctx.start_mission(
                f"child:{i}", type="test_refuse", input={"order_id": f"C-{i}", "amount": "5000"}
            )
        else:
            child = ctx.start_mission(
                f"child:{i}", type=data.child_type, input=data.child_input, title=f"Child {i}"
            )
        ids.append(child)
    timeout = timedelta(seconds=data.timeout_seconds) if data.timeout_seconds else None
    results = ctx.wait_for_missions("children", ids, timeout=timeout)
    if data.marker:
        once = RetryPolicy(max_attempts=1)
        ctx.step("after", flaky, data.marker, data.fail_times, retry=once)
    statuses = [result["status"] for result in results]
    succeeded = statuses.count("succeeded")
    outcome = "all_succeeded" if succeeded == len(statuses) else "some_did_not"
    return {"outcome": outcome, "statuses": statuses, "ids": ids}


class AnyInput(BaseModel):
    decision: bool = True
    event_key: str = ""  # set: an Event branch for event "go" with this key
    timer_seconds: float | None = None
    child_key: str = ""  # set: a MissionDone branch for a child waiting for "shipped"/key
    timeout_seconds: float | None = None


@mission("test_any", version=1, title="First of several", input=AnyInput)
def first_of(ctx, data: AnyInput) -> dict:
    waits, kinds = [], []
    if data.child_key:
        child = ctx.start_mission("child", type="test_event", input={"key": data.child_key})
    if data.decision:
        waits.append(Decision(role="supervisor", title="Go ahead?", context={"why": "test"}))
        kinds.append("decision")
    if data.event_key:
        waits.append(Event(event="go", key=data.event_key))
        kinds.append("event")
    if data.timer_seconds is not None:
        waits.append(Timer(timedelta(seconds=data.timer_seconds)))
        kinds.append("timer")
    if data.child_key:
        waits.append(MissionDone(child))
        kinds.append("mission")
    timeout = timedelta(seconds=data.timeout_seconds) if data.timeout_seconds else None
    index, value = ctx.wait_any("first", *waits, timeout=timeout)
    if index is None:
        return {"outcome": "timeout"}
    if kinds[index] == "decision":
        value = {"outcome": value.outcome, "by": value.decided_by}
    ctx.step("after", echo, kinds[index])
    return {"outcome": kinds[index], "value": value}


class MapInput(BaseModel):
    count: int = Field(ge=0, le=500)
    max_parallel: int | None = None
    marker: str = ""  # one line per execution of an item: "run <idempotency key>"
    fail_file: str = ""  # while it exists, item `fail_index` raises NonRetryableError
    fail_index: int = -1
    flaky_times: int = 0  # every item raises ConnectionError on its first `flaky_times` runs
    block_file: str = ""  # item `block_index` waits while it exists (a test kills its worker)
    block_index: int = -1
    barrier: int = 0  # every item waits until `barrier` items have started (see the marker)


def map_check(data: MapInput, key: str, item: int, offset: int) -> dict:
    """A map item: records its run, may fail, waits or block, then writes one Group row (its
    database effect, inside the item's transaction) and reports how many items held a slot."""
    from missions.models import MapItem

    runs = _marker_runs(data.marker, key)
    _append(data.marker, f"run {key} pid={os.getpid()}")
    if item == data.fail_index and data.fail_file and Path(data.fail_file).exists():
        raise NonRetryableError(f"item {item} is bad")
    if runs < data.flaky_times:
        raise ConnectionError(f"flaky run {runs + 1}")
    _wait_while(lambda: item == data.block_index and Path(data.block_file).exists())
    _wait_while(lambda: data.barrier and len(_lines(data.marker)) < data.barrier)
    mission_id = key.split(":")[0]
    siblings = MapItem.objects.filter(mission_id=mission_id, step_name="check")
    Group.objects.create(name=f"{key}#{os.urandom(4).hex()}")
    return {
        "item": item,
        "value": item + offset,
        "key": key,
        "holding": siblings.filter(enqueued_at__isnull=False)
        .exclude(status__in=("completed", "failed"))
        .count(),
        "running": siblings.filter(status="running").count(),
    }


def _lines(marker: str) -> list[str]:
    return Path(marker).read_text().splitlines() if marker and Path(marker).exists() else []


def _marker_runs(marker: str, key: str) -> int:
    return sum(1 for line in _lines(marker) if line.split()[1] == key)


def _append(marker: str, line: str) -> None:
    if marker:
        with Path(marker).open("a") as f:
            f.write(line + "\n")


def _wait_while(condition, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@mission("test_map", version=1, title="Parallel checks", input=MapInput)
def mapper(ctx, data: MapInput) -> dict:
    offset = ctx.step("offset", echo, 100)
    results = ctx.map(
        "check",
        lambda item: map_check(data, ctx.idempotency_key, item, offset),  # a closure
        range(data.count),
        max_parallel=data.max_parallel,
        retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(0), jitter=0),
    )
    ctx.step("after", echo, len(results))
    return {"outcome": "mapped", "results": results}


@mission("test_map_misuse", version=1, title="Parallel steps calling ctx", input=CountInput)
def map_misuse(ctx, data: CountInput) -> dict:
    ctx.map("check", lambda item: ctx.step(f"inner:{item}", echo, item), range(data.steps))
    return {"outcome": "unreachable"}
