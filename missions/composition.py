"""Missions made of missions, and the first of several waits: `ctx.start_mission`,
`ctx.wait_for_missions` and `ctx.wait_any` (docs/authoring.md), with a single step's
guarantees.

- Starting a child is a checkpoint: its transaction inserts the child's row (unique per
  parent and step, so a replay or a crash between start and checkpoint can never start a
  second) and records the step; the child is enqueued after commit.
- A mission reaching a final state wakes its parent (`missions.waits.mission_wake_parent`) in
  the same transaction. Lock order: the child's row, then the parent's. A parent entering its
  wait reads its children only after its fence has locked its own row, so a child ending
  meanwhile either is seen or wakes the parent once its wait has committed.
- `wait_any`'s branches are settled in the order they happened (decided, received, due,
  finished); the checkpoint of the winner withdraws the losing decisions in its transaction
  and hands back an event it no longer needs, so the event waits for its next waiter.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from decisions.waits import decision_open, decision_outcome, decision_withdraw
from missions.engine import (
    IncompatibleCodeChange,
    MissionContext,
    Outcome,
    _Checkpoint,
    _due_at,
    _observation,
    _parse_time,
    _Yield,
    to_json,
)
from missions.models import Event as EventRow
from missions.models import EventDelivery, Mission, Step
from missions.runtime import Decision, DecisionResult, Event, MissionDone, NonRetryableError, Timer
from missions.services import MissionError, MissionInputError, mission_start
from missions.waits import mission_wake_parent

Kind = Step.Kind
WaitingOn = Mission.WaitingOn
FINAL = set(Mission.FINAL_STATUSES)
WAITS = (Decision, Event, Timer, MissionDone)


# --- a final state wakes the parent ---------------------------------------------------------


def mission_ended(mission: Mission) -> None:
    """The engine wrote `mission`'s final state (in the transaction still open)."""
    if mission.parent_id is not None:
        mission_wake_parent(mission=mission)


# --- ctx.start_mission -----------------------------------------------------------------------


def start_mission(
    ctx: MissionContext,
    name: str,
    *,
    type: str,
    input: Any,
    key: str | None = None,
    title: str = "",
    priority: int = 0,
) -> str:
    step = ctx._enter(name, Kind.CHILD)
    if step and step.status == Step.Status.COMPLETED:
        return step.result
    ctx._guard_worker_losses(name)
    try:
        with ctx._commit_block() as commit:
            child = _child(
                ctx, name, type=type, input=input, key=key or "", title=title, priority=priority
            )
            checkpoint = ctx._completed_checkpoint(
                name, Kind.CHILD, step, result=str(child.id), attempts=1
            )
            checkpoint.observations.append(
                _observation(
                    "note",
                    f"Started {child.title or child.type} #{str(child.id)[:8]}",
                    step=name,
                    data={"child": str(child.id), "type": child.type},
                )
            )
            commit(checkpoint)
    except MissionError as exc:
        ctx._fail_step(name, Kind.CHILD, step, attempts=1, message=_refusal(name, type, exc))
    return ctx._after_checkpoint(checkpoint.step)


def _child(
    ctx: MissionContext, name: str, *, type: str, input: Any, key: str, title: str, priority: int
) -> Mission:
    """The child this step started, or a new one; called after the fence locked the parent."""
    existing = Mission.objects.filter(parent_id=ctx.mission.id, parent_step=name).first()
    if existing is not None:  # started before a crash that lost the step's checkpoint
        return existing
    requester = ctx.mission.started_by if ctx.mission.started_by_id else None
    child = mission_start(
        type=type,
        input=input,
        started_by=requester,
        idempotency_key=key,
        parent=ctx.mission,
        parent_step=name,
        title=title,
        priority=priority,
    ).mission
    if child.parent_id != ctx.mission.id:
        raise NonRetryableError(
            f"step '{name}': key '{key}' already started mission {child.id}, "
            "which is not a child of this mission"
        )
    return child


def _refusal(name: str, type: str, exc: MissionError) -> str:
    detail = str(exc)
    if isinstance(exc, MissionInputError):
        detail += ": " + "; ".join(f"{f}: {', '.join(m)}" for f, m in exc.errors.items())
    return f"step '{name}' could not start a '{type}' mission: {detail}"


# --- ctx.wait_for_missions -------------------------------------------------------------------


def wait_for_missions(
    ctx: MissionContext, name: str, ids: list[str], *, timeout=None
) -> list[dict]:
    ids = [_mission_id(value) for value in ids]
    step = ctx._enter(name, Kind.MISSIONS)
    if step and step.status == Step.Status.COMPLETED:
        return step.result
    ctx._guard_worker_losses(name)
    now = timezone.now()
    until = _parse_time(step.wait.get("until")) if step else _due_at(now, timeout)
    if step is not None:  # woken: by its children's ends, most likely
        states = _states(ctx, ids)
        if _wait_over(states, now=now, until=until):
            # A mission's end never changes: the checkpoint needs no lock held across the
            # read, so it takes the one-statement path, as a made decision does.
            checkpoint = _missions_ended_checkpoint(ctx, name, step, states)
            ctx._commit(checkpoint)
            return ctx._after_checkpoint(checkpoint.step)
    with ctx._commit_block() as commit:
        states = _states(ctx, ids)
        open_ = [state for state in states if state["status"] not in FINAL]
        if _wait_over(states, now=now, until=until):
            checkpoint = _missions_ended_checkpoint(ctx, name, step, states)
        else:
            checkpoint = ctx._waiting_checkpoint(
                name,
                Kind.MISSIONS,
                step,
                wait={"missions": ids, "until": until.isoformat() if until else None},
                waiting_on=WaitingOn.MISSIONS,
                label=f"{len(open_)} of {len(ids)} missions: {_names(open_)}",
                until=until,
            )
        commit(checkpoint)
    if checkpoint.step.status == Step.Status.WAITING:
        raise _Yield(Outcome.WAITING)
    return ctx._after_checkpoint(checkpoint.step)


def _wait_over(states: list[dict], *, now: datetime, until: datetime | None) -> bool:
    return all(state["status"] in FINAL for state in states) or bool(until and now >= until)


def _missions_ended_checkpoint(
    ctx: MissionContext, name: str, step: Step | None, states: list[dict]
) -> _Checkpoint:
    checkpoint = ctx._completed_checkpoint(name, Kind.MISSIONS, step, result=states, attempts=1)
    checkpoint.carry_on = True  # a wait did no work: go on in this task
    open_ = [state for state in states if state["status"] not in FINAL]
    checkpoint.observations.append(
        _observation(
            "resumed",
            f"{len(states) - len(open_)} of {len(states)} missions finished"
            + ("" if not open_ else "; gave up waiting for the rest"),
            step=name,
            data={"statuses": [state["status"] for state in states]},
        )
    )
    return checkpoint


def _mission_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NonRetryableError(f"'{value}' is not a mission id") from None


# What a parent reads of a child it waits on.
_CHILD_FIELDS = (
    "id",
    "type",
    "status",
    "outcome",
    "summary",
    "verdict",
    "error",
    "parent_id",
    "finished_at",
)


def _states(ctx: MissionContext, ids: list[str]) -> list[dict]:
    """Each mission's state, in the order asked; only this mission's children may be waited
    on (a child's end is what wakes its parent)."""
    query = Mission.objects.filter(id__in=ids).values(*_CHILD_FIELDS, "title")
    rows = {str(row["id"]): row for row in query}
    states = []
    for mission_id in ids:
        row = rows.get(mission_id)
        _refuse_unless_child(ctx, mission_id, row)
        states.append(_state(row))
    return states


def _state(row: dict) -> dict:
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "status": row["status"],
        "outcome": row["outcome"],
        "summary": row["summary"],
        "verdict": row["verdict"],
        "error": row["error"],
    }


def _names(states: list[dict]) -> str:
    shown = ", ".join(f"{state['type']} #{state['id'][:8]} ({state['status']})" for state in states)
    return shown if len(shown) < 250 else shown[:247] + "..."


# --- ctx.wait_any ----------------------------------------------------------------------------


def wait_any(ctx: MissionContext, name: str, *waits: Any, timeout=None) -> tuple[int | None, Any]:
    _check_waits(name, waits)
    step = ctx._enter(name, Kind.ANY)
    if step and step.status == Step.Status.COMPLETED:
        return _decoded(step.result)
    ctx._guard_worker_losses(name)
    now = timezone.now()
    plan = step.wait if step else _plan(name, waits, now=now, timeout=timeout)
    _check_plan(name, waits, plan)
    with ctx._commit_block() as commit:
        winner = _winner(ctx, name, waits, plan, opened=step is not None, now=now)
        if winner is not None:
            checkpoint = _settled(ctx, name, step, waits, plan, winner)
        else:
            if step is None:
                _open_decisions(ctx, name, waits, plan)
            checkpoint = _any_waiting(ctx, name, step, waits, plan)
        commit(checkpoint)
    if checkpoint.step.status == Step.Status.WAITING:
        raise _Yield(Outcome.WAITING)
    return _decoded(ctx._after_checkpoint(checkpoint.step))


def _check_waits(name: str, waits: tuple) -> None:
    """Refuse what cannot work, at the call, before anything is recorded."""
    if not waits:
        raise TypeError(f"ctx.wait_any('{name}') needs at least one wait")
    for wait in waits:
        if not isinstance(wait, WAITS):
            raise TypeError(
                f"ctx.wait_any('{name}') takes Decision, Event, Timer or MissionDone, not {wait!r}"
            )
    if sum(isinstance(wait, Event) for wait in waits) > 1:
        # A mission waits for one event name and key at a time (its waiting_event).
        raise ValueError(f"ctx.wait_any('{name}') can wait for one Event at a time, not several")


def _plan(name: str, waits: tuple, *, now: datetime, timeout) -> dict:
    """What the step records: each branch, with a timer's due time fixed once."""
    branches = []
    for index, wait in enumerate(waits):
        if isinstance(wait, Decision):
            branches.append({"kind": "decision", "step": f"{name}:{index}", "title": wait.title})
        elif isinstance(wait, Event):
            branches.append({"kind": "event", "event": wait.event, "key": wait.key or ""})
        elif isinstance(wait, Timer):
            branches.append({"kind": "timer", "until": (now + wait.duration).isoformat()})
        else:
            branches.append({"kind": "mission", "id": _mission_id(wait.id)})
    until = _due_at(now, timeout)
    return {"branches": branches, "until": until.isoformat() if until else None}


_KINDS = {Decision: "decision", Event: "event", Timer: "timer", MissionDone: "mission"}


def _check_plan(name: str, waits: tuple, plan: dict) -> None:
    recorded = [branch["kind"] for branch in plan["branches"]]
    if recorded != [_KINDS[type(wait)] for wait in waits]:
        raise IncompatibleCodeChange(
            f"mission code changed incompatibly: ctx.wait_any('{name}') was recorded waiting "
            f"for {', '.join(recorded)}"
        )


def _winner(
    ctx: MissionContext, name: str, waits: tuple, plan: dict, *, opened: bool, now: datetime
) -> tuple[int | None, str, Any] | None:
    """The first settled branch; a winning event is claimed for this wait here. Should another
    mission claim that event first, the next settled branch (or event) is looked for."""
    for _ in range(5):
        winner = _first_settled(ctx, name, waits, plan, opened=opened, now=now)
        if winner is None or winner[1] != "event":
            return winner
        if _take_event(ctx.mission, name, plan["branches"][winner[0]]):
            return winner
    return None


def _first_settled(
    ctx: MissionContext, name: str, waits: tuple, plan: dict, *, opened: bool, now: datetime
) -> tuple[int | None, str, Any] | None:
    """(index, kind, value) of the branch that settled first, (None, "timeout", None) if
    the time-out passed with none settled, or None: keep waiting."""
    settled = []
    for index, (wait, branch) in enumerate(zip(waits, plan["branches"], strict=True)):
        found = _settled_branch(ctx, name, wait, branch, opened=opened, now=now)
        if found is not None:
            settled.append((found[0], index, branch["kind"], found[1]))
    if settled:
        _, index, kind, value = min(settled, key=lambda item: (item[0], item[1]))
        return index, kind, value
    until = _parse_time(plan.get("until"))
    if until and now >= until:
        return None, "timeout", None
    return None


def _settled_branch(
    ctx: MissionContext, name: str, wait: Any, branch: dict, *, opened: bool, now: datetime
) -> tuple[datetime, Any] | None:
    """(when it settled, its value) if this branch has settled, else None."""
    if isinstance(wait, Decision):
        if not opened:
            return None
        result = decision_outcome(mission_id=ctx.mission.id, step_name=branch["step"])
        if result is None:
            return None
        return _parse_time(result["decided_at"]) or now, result
    if isinstance(wait, Event):
        event = _event_for(ctx.mission, name, branch)
        return (event.received_at, event.payload) if event else None
    if isinstance(wait, Timer):
        until = _parse_time(branch["until"])
        return (until, None) if now >= until else None
    row = _child_row(ctx, branch["id"])
    return (row["finished_at"] or now, _state(row)) if row and row["status"] in FINAL else None


def _child_row(ctx: MissionContext, mission_id: str) -> dict | None:
    row = Mission.objects.filter(id=mission_id).values(*_CHILD_FIELDS).first()
    _refuse_unless_child(ctx, mission_id, row)
    return row


def _refuse_unless_child(ctx: MissionContext, mission_id: str, row: dict | None) -> None:
    if row is None or row["parent_id"] != ctx.mission.id:
        raise NonRetryableError(
            f"mission {mission_id} is not a child of this mission: "
            "start it with ctx.start_mission to wait for it"
        )


def _event_for(mission: Mission, name: str, branch: dict) -> EventRow | None:
    """The event delivered to this wait, or the oldest unclaimed match (claimed only if its
    branch wins)."""
    delivery = EventDelivery.objects.filter(mission=mission, step_name=name).first()
    if delivery is not None:
        return delivery.event
    return (
        EventRow.objects.filter(name=branch["event"], key=branch["key"], delivered_at=None)
        .order_by("received_at")
        .first()
    )


def _settled(
    ctx: MissionContext,
    name: str,
    step: Step | None,
    waits: tuple,
    plan: dict,
    winner: tuple[int | None, str, Any],
) -> _Checkpoint:
    index, kind, value = winner
    if kind != "event":
        _hand_back_event(ctx.mission, name)
    what = _describe(plan, index)
    withdrawn = _withdraw_losers(ctx, name, waits, plan, winner=index, what=what, step=step)
    result = {"index": index, "kind": kind, "value": to_json(value)}
    checkpoint = ctx._completed_checkpoint(name, Kind.ANY, step, result=result, attempts=1)
    checkpoint.carry_on = True
    message = f"First to settle: {what}" if index is not None else "Gave up waiting: time-out"
    if withdrawn:
        message += f"; withdrew {withdrawn} decision" + ("s" if withdrawn > 1 else "")
    checkpoint.observations.append(
        _observation("resumed", message[:500], step=name, data={"index": index, "kind": kind})
    )
    return checkpoint


def _take_event(mission: Mission, name: str, branch: dict) -> bool:
    """Claim the oldest unclaimed match for this wait, unless one was delivered to it;
    False if another mission took it meanwhile."""
    if EventDelivery.objects.filter(mission=mission, step_name=name).exists():
        return True
    candidate = (
        EventRow.objects.filter(name=branch["event"], key=branch["key"], delivered_at=None)
        .order_by("received_at")
        .first()
    )
    if candidate is None or not EventRow.objects.filter(id=candidate.id, delivered_at=None).update(
        delivered_at=timezone.now()
    ):
        return False
    EventDelivery.objects.create(mission=mission, step_name=name, event=candidate)
    return True


def _hand_back_event(mission: Mission, name: str) -> None:
    """An event delivered to this wait after another branch settled is not consumed: it is
    kept for the next mission that waits for it (the scheduler wakes one already waiting)."""
    delivery = EventDelivery.objects.filter(mission=mission, step_name=name).first()
    if delivery is not None:
        EventRow.objects.filter(id=delivery.event_id).update(delivered_at=None)
        delivery.delete()


def _withdraw_losers(
    ctx: MissionContext,
    name: str,
    waits: tuple,
    plan: dict,
    *,
    winner: int | None,
    what: str,
    step: Step | None,
) -> int:
    if step is None:
        return 0  # settled on entry: no decision was opened
    reason = f"superseded by {what}" if winner is not None else "the wait timed out"
    withdrawn = 0
    for index, wait in enumerate(waits):
        if index != winner and isinstance(wait, Decision):
            step_name = plan["branches"][index]["step"]
            withdrawn += decision_withdraw(
                mission_id=ctx.mission.id, step_name=step_name, reason=reason
            )
    return withdrawn


def _describe(plan: dict, index: int | None) -> str:
    if index is None:
        return "the time-out"
    branch = plan["branches"][index]
    kind = branch["kind"]
    if kind == "decision":
        return f"decision '{branch['title']}'"
    if kind == "event":
        return f"event '{branch['event']}'" + (f" for {branch['key']}" if branch["key"] else "")
    if kind == "timer":
        return f"timer due {_parse_time(branch['until']):%Y-%m-%d %H:%M:%S} UTC"
    return f"mission #{branch['id'][:8]}"


def _open_decisions(ctx: MissionContext, name: str, waits: tuple, plan: dict) -> None:
    until = _parse_time(plan.get("until"))
    for wait, branch in zip(waits, plan["branches"], strict=True):
        if isinstance(wait, Decision):
            decision_open(
                mission=ctx.mission,
                step_name=branch["step"],
                role=wait.role,
                title=wait.title,
                summary=wait.summary,
                context=to_json(wait.context or {}),
                options=list(wait.options),
                due_at=until,
            )


def _any_waiting(
    ctx: MissionContext, name: str, step: Step | None, waits: tuple, plan: dict
) -> _Checkpoint:
    dues = [_parse_time(b["until"]) for b in plan["branches"] if b["kind"] == "timer"]
    dues += [_parse_time(plan["until"])] if plan.get("until") else []
    label = "first of " + "; ".join(_describe(plan, i) for i in range(len(waits)))
    checkpoint = ctx._waiting_checkpoint(
        name,
        Kind.ANY,
        step,
        wait=plan,
        waiting_on=WaitingOn.ANY,
        label=label,
        until=min(dues) if dues else None,
    )
    event = next((b for b in plan["branches"] if b["kind"] == "event"), None)
    if event is not None:
        checkpoint.mission_updates.update(
            waiting_event=event["event"], waiting_event_key=event["key"]
        )
    return checkpoint


def _decoded(result: dict) -> tuple[int | None, Any]:
    value = result["value"]
    if result["kind"] == "decision":
        value = DecisionResult.from_json(value)
    return result["index"], value
