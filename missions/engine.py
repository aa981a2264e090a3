"""The engine: advances a mission under a lease, one checkpoint per step.

A pass runs the mission function from the start. Steps already recorded return their
recorded results (replay); the first unrecorded step is executed and its result, the
mission's new state and its observations commit in one transaction whose first statement
checks the fencing token, so a worker whose lease was taken over can never commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from decisions.waits import decision_expire, decision_open, decision_outcome
from integrations import llm, mcp_client
from missions import postgres_fast_paths
from missions.lease import (
    LeaseHeartbeat,
    lease_acquire_with_steps,
    lease_release,
    worker_identity,
)
from missions.models import Event, EventDelivery, Mission, Step
from missions.runtime import (
    DEFAULT_RETRY,
    DecisionResult,
    MissionDefinition,
    NonRetryableError,
    RetryPolicy,
    Verdict,
    get_definition,
)
from observations.services import observation_record
from studiox import task_queue
from studiox.celery import app as celery_app

logger = logging.getLogger(__name__)

ADVANCE_TASK = "missions.advance"  # missions.tasks.advance_mission
WAKE_TASK = "missions.wake_if_due"  # missions.tasks.wake_if_due
# A wait this short is woken by a delayed message as well as by the scheduler's tick.
SHORT_WAIT_SECONDS = 60
# Over a rate limit nothing was called: the step waits for its slot (not a retry).
RATE_LIMITED = (mcp_client.ToolRateLimited, llm.LLMRateLimited)

Kind = Step.Kind
Status = Mission.Status
# A step's line in business terms: text, or a function of the step's result that makes it.
StepTitle = str | Callable[[Any], str] | None


class Outcome(StrEnum):
    CONTINUE = "continue"  # a step committed; more to do
    WAITING = "waiting"  # suspended on a decision, event, timer or back-off
    FINISHED = "finished"  # verdict, failure, or cancelled
    STOPPED = "stopped"  # paused or cancelled by an operator while running
    SKIPPED = "skipped"  # not runnable, or another worker holds the lease
    STALE = "stale"  # our lease was taken over; nothing committed


_WAIT_KINDS = (Step.Kind.SLEEP, Step.Kind.EVENT, Step.Kind.DECISION)
_STEP, _COMPLETED = Step.Kind.STEP, Step.Status.COMPLETED  # compared once per replayed step


class _Yield(BaseException):
    """Ends a pass. A BaseException so that a mission's `except Exception` cannot swallow it."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome


class StaleLease(Exception):
    """Another worker took the mission over; this one must not commit."""


class IncompatibleCodeChange(NonRetryableError):
    pass


# --- one advance ---------------------------------------------------------------------------


def mission_advance(*, mission_id, worker: str | None = None) -> Outcome:
    """Advance the mission as far as one task may: one step, or more within the time slice."""
    worker = worker or worker_identity()
    cached = _step_cache.get(str(mission_id))
    settled = _first_unsettled(cached)
    mission, unseen = lease_acquire_with_steps(mission_id, worker, steps_from=settled)
    if mission is None:
        return Outcome.SKIPPED
    deadline = time.monotonic() + settings.STUDIOX_TIME_SLICE_MS / 1000
    definition = get_definition(mission.type, mission.version)
    steps = _load_steps(mission, cached, settled=settled, unseen=unseen)
    ctx = MissionContext(mission, definition, steps, deadline=deadline, settled=settled)
    if definition is None:
        return _finish_pass(
            ctx,
            lambda: ctx.fail(
                f"mission type '{mission.type}' version {mission.version} "
                "is not registered in this "
                "worker; deploy its code (STUDIOX_MISSION_MODULES) and retry"
            ),
        )
    with LeaseHeartbeat(mission.id, mission.fencing_token):
        return _finish_pass(ctx, lambda: _run_function(ctx, definition))


def _run_function(ctx: MissionContext, definition: MissionDefinition) -> None:
    if ctx.mission.step_count == 0 and not ctx._steps and ctx.mission.status == Status.RUNNING:
        ctx._pending_observations.append(
            _observation("started", f"Started {definition.title}", data={"type": definition.name})
        )
    try:
        verdict = definition.fn(ctx, definition.parse_input(ctx.mission.input))
    except (_Yield, StaleLease):
        raise
    except Exception as exc:
        logger.info("mission %s failed: %s", ctx.mission.id, exc)
        message = str(exc) if isinstance(exc, NonRetryableError) else f"{type(exc).__name__}: {exc}"
        ctx.fail(message)
    ctx.finish(verdict)
    raise _Yield(Outcome.FINISHED)


def _finish_pass(ctx: MissionContext, body: Callable[[], None]) -> Outcome:
    try:
        body()
        outcome = Outcome.FINISHED
    except _Yield as stop:
        outcome = stop.outcome
    except StaleLease:
        logger.warning("mission %s: lease lost, discarding this pass", ctx.mission.id)
        _step_cache.pop(str(ctx.mission.id), None)
        return Outcome.STALE
    if outcome == Outcome.STOPPED:
        lease_release(ctx.mission.id, ctx._token)
    ctx.cache()
    if outcome == Outcome.CONTINUE:
        enqueue_advance(ctx.mission.id, priority=ctx.mission.priority)
    return outcome


def enqueue_advance(mission_id, *, priority: int = 0) -> None:
    """Send the next advance to the broker. A lost message is found again by the scheduler.
    `priority` is the mission's: on Redis, higher-priority missions' steps are served first."""
    # Redis serves message priority 0 first, 9 last: mission priority 10 -> 0, 0 -> 4, -10 -> 9.
    broker_priority = max(0, min(9, round((10 - priority) * 9 / 20)))
    try:
        # By name: missions.tasks imports this module, so importing the task would be a cycle.
        task_queue.enqueue(ADVANCE_TASK, [str(mission_id)], priority=broker_priority)
    except Exception:
        logger.warning(
            "could not enqueue mission %s; the scheduler will", mission_id, exc_info=True
        )


def enqueue_wake(mission_id, *, at: datetime) -> None:
    """Wake a short wait (a rate limit's next slot) at `at` with a delayed message, sooner
    than the scheduler's tick would; the scheduler stays the backstop for a lost message."""
    delay = (at - timezone.now()).total_seconds()
    if delay > SHORT_WAIT_SECONDS:
        return
    try:
        celery_app.send_task(WAKE_TASK, args=[str(mission_id)], countdown=max(0.0, delay))
    except Exception:
        logger.warning("could not schedule the wake of mission %s", mission_id, exc_info=True)


def mission_check_compatibility(mission: Mission) -> str | None:
    """Replay the mission's recorded steps against the current code, executing nothing.
    None if the code still agrees with the record, else why it would diverge."""
    definition = get_definition(mission.type, mission.version)
    if definition is None:
        return f"mission type '{mission.type}' version {mission.version} is not registered"
    steps = list(Step.objects.filter(mission=mission).order_by("position"))
    ctx = MissionContext(mission, definition, steps, deadline=0)
    ctx.dry_run = True
    try:
        definition.fn(ctx, definition.parse_input(mission.input))
    except _Yield:
        return None
    except IncompatibleCodeChange as exc:
        return str(exc)
    except Exception as exc:
        return f"the code raised {type(exc).__name__} while replaying: {exc}"
    if len(steps) > ctx._position:
        return f"the code now finishes after {ctx._position} steps; {len(steps)} are recorded"
    return None


# --- results and the replay cache ---------------------------------------------------------


def to_json(value: Any) -> Any:
    """The JSON form of a step result; replay returns exactly this, so the first run does too."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _checked_size(name: str, result: Any) -> Any:
    """A result over the limit fails its step clearly instead of retrying forever."""
    size = len(json.dumps(result).encode())
    if size > settings.STUDIOX_MAX_STEP_RESULT_BYTES:
        raise NonRetryableError(
            f"step '{name}' returned {size} bytes, over the limit of "
            f"{settings.STUDIOX_MAX_STEP_RESULT_BYTES} bytes (STUDIOX_MAX_STEP_RESULT_BYTES)"
        )
    return result


@dataclass
class _Cached:
    """What this worker process last saw of a mission, valid while no one else took a lease."""

    fencing_token: int
    steps: list[Step]
    settled: int = 0  # how many of `steps`, from the first, it saw completed


_step_cache: dict[str, _Cached] = {}  # by mission id
_CACHE_LIMIT = 2000


def _remember(mission_id, token: int, steps: list[Step], *, settled_from: int = 0) -> None:
    """Keep `steps` for the mission's next pass; the first `settled_from` are known completed,
    so only the steps after them are looked at (a long mission's pass stays short)."""
    if len(_step_cache) >= _CACHE_LIMIT:
        _step_cache.clear()
    settled = settled_from
    while settled < len(steps) and steps[settled].status == _COMPLETED:
        settled += 1
    _step_cache[str(mission_id)] = _Cached(token, steps, settled)


def _first_unsettled(cached: _Cached | None) -> int:
    """Where the steps this process has not seen for sure begin: a completed step never
    changes (G2), so only those after the completed ones it saw are read again."""
    return 0 if cached is None else cached.settled


def _load_steps(
    mission: Mission, cached: _Cached | None, *, settled: int, unseen: list[Step] | None
) -> list[Step]:
    """The mission's steps: what this process saw if nobody took a lease since, else the first
    `settled` it saw and the rest, as read with the lease (`unseen`) or read now."""
    if cached and cached.fencing_token == mission.fencing_token - 1:
        return cached.steps
    if unseen is None:
        unseen = _steps_from(mission, settled)
    return [*cached.steps[:settled], *unseen] if cached else unseen


def _steps_from(mission: Mission, position: int) -> list[Step]:
    return list(Step.objects.filter(mission=mission, position__gte=position).order_by("position"))


# --- the context a mission function receives ----------------------------------------------


@dataclass
class _Checkpoint:
    step: Step
    created: bool
    mission_updates: dict = field(default_factory=dict)
    observations: list[dict] = field(default_factory=list)
    # A finished wait did no work: the step after it runs in the same task, saving a broker
    # round trip between a decision (or event, or timer) and the work it unblocks.
    carry_on: bool = False


class MissionContext:
    """The `ctx` a mission function receives (docs/authoring.md)."""

    def __init__(
        self,
        mission: Mission,
        definition: MissionDefinition,
        steps: list[Step],
        *,
        deadline: float,
        settled: int = 0,
    ):
        self.mission = mission
        self.definition = definition
        self._token = mission.fencing_token
        self._steps = steps
        self._settled = settled  # the first `settled` steps were seen completed
        self._names = {step.name: step for step in steps}
        self._position = 0
        self._pending_observations: list[dict] = []
        self._deadline = deadline
        self._current_step_name: str | None = None
        self.interrupted = False
        self._step_done = False  # this pass committed its step and gave the lease back
        self.dry_run = False
        self.capture_map: str | None = None  # a map item's replay stops at this map (fan_out)

    # identity and clock -------------------------------------------------------------------

    @property
    def mission_id(self):
        return self.mission.id

    @property
    def idempotency_key(self) -> str:
        """The current step's key: the same on every attempt, unique to mission and step."""
        if self._current_step_name is None:
            raise RuntimeError("ctx.idempotency_key is only defined while a step runs")
        return self._key(self._current_step_name)

    def _key(self, step_name: str) -> str:
        return f"{self.mission.id}:{step_name}"

    def now(self) -> datetime:
        """A replay-safe clock: the time of the last checkpoint before this point."""
        for step in reversed(self._steps[: self._position]):
            if step.finished_at:
                return step.finished_at
        return self.mission.created_at

    @property
    def replaying(self) -> bool:
        return self._position < len(self._steps)

    # the primitives ---------------------------------------------------------------------

    def observe(self, message: str, **data: Any) -> None:
        """Add a business-terms line to the rail; written once, not again on replay."""
        if not self.replaying:
            self._pending_observations.append(
                {"kind": "note", "message": message, "data": to_json(data)}
            )

    def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retry: RetryPolicy | None = None,
        title: StepTitle = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` once and checkpoint its JSON result; replay returns it.
        `title` (text, or a function of the result) is the step's line on the rail."""
        # Replay, the path every pass takes for every step before its own: written out here
        # (no call of _recorded_here) because a long mission's pass runs it a thousand times.
        position = self._position
        if position < len(self._steps):
            recorded = self._steps[position]
            if recorded.name == name and recorded.kind == _STEP and recorded.status == _COMPLETED:
                self._position = position + 1
                return recorded.result
        return self._run_step(
            name, Kind.STEP, lambda: fn(*args, **kwargs), retry=retry, title=title
        )

    def map(
        self,
        name: str,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        max_parallel: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[Any]:
        """Run `fn(item)` for every item as its own step (`name:i`), side by side on the
        workers, at most `max_parallel` at once; the results in input order (missions.fan_out)."""
        from missions import fan_out  # fan_out builds on this module

        return fan_out.map_step(self, name, fn, items, max_parallel=max_parallel, retry=retry)

    def transaction(
        self, name: str, fn: Callable[..., Any], *args: Any, title: StepTitle = None, **kwargs: Any
    ) -> Any:
        """Run `fn` inside the checkpoint's transaction: its writes commit exactly once."""
        runner = lambda: fn(*args, **kwargs)  # noqa: E731
        return self._run_step(name, Kind.TRANSACTION, runner, retry=None, title=title)

    def call_tool(
        self,
        name: str,
        *,
        server: str,
        tool: str,
        arguments: dict,
        retry: RetryPolicy | None = None,
        title: StepTitle = None,
    ) -> Any:
        """Call `tool` on MCP server `server` as a checkpointed step, passing the step's key."""

        def call() -> Any:
            try:
                return mcp_client.call_tool(
                    server=server,
                    tool=tool,
                    arguments=arguments,
                    idempotency_key=self.idempotency_key,
                )
            except mcp_client.ToolRefusedError as exc:
                raise NonRetryableError(f"{server}.{tool} refused: {exc}") from exc

        return self._run_step(name, Kind.TOOL, call, retry=retry, title=title)

    def llm(
        self,
        name: str,
        *,
        messages: list[dict],
        schema: dict | None = None,
        retry: RetryPolicy | None = None,
        title: StepTitle = None,
    ) -> dict:
        """Ask the configured LLM provider as a checkpointed step; the record keeps model,
        messages, response, token counts and latency."""

        def call() -> dict:
            result = llm.complete(messages=messages, schema=schema, waiter=self.idempotency_key)
            return {"messages": messages, **result.to_json()}

        # Rate limits, timeouts and 5xx retry with back-off; a refusal (bad key, bad request,
        # a reply that keeps breaking the schema) fails clearly instead of retrying.
        policy = retry or RetryPolicy(non_retryable=(llm.LLMError,))
        return self._run_step(name, Kind.LLM, call, retry=policy, title=title)

    def sleep(self, name: str, duration: timedelta) -> None:
        """Suspend the mission for `duration`; the due time is a row, not a broker message."""
        self._wait_until(name, lambda: timezone.now() + duration)

    def sleep_until(self, name: str, when: datetime) -> None:
        """Suspend the mission until `when` (timezone-aware)."""
        if timezone.is_naive(when):
            raise ValueError("ctx.sleep_until needs a timezone-aware datetime")
        self._wait_until(name, lambda: when)

    def _wait_until(self, name: str, compute_due: Callable[[], datetime]) -> None:
        """`compute_due` is asked only when the timer starts; a replay reads the recorded time."""
        step = self._enter(name, Kind.SLEEP)
        if step and step.status == Step.Status.COMPLETED:
            return None
        until = _parse_time(step.wait.get("until")) if step else compute_due()
        if timezone.now() >= until:
            checkpoint = self._completed_checkpoint(name, Kind.SLEEP, step, result=None, attempts=1)
            if step is not None:
                checkpoint.observations.append(
                    _observation("resumed", f"Timer '{name}' is up", step=name)
                )
            self._commit(checkpoint)
            self._after_checkpoint(checkpoint.step)
            return None
        checkpoint = self._waiting_checkpoint(
            name,
            Kind.SLEEP,
            step,
            wait={"until": until.isoformat()},
            waiting_on=Mission.WaitingOn.TIMER,
            label=f"timer '{name}'",
            until=until,
        )
        self._commit(checkpoint)
        raise _Yield(Outcome.WAITING)

    def wait_for_event(
        self, name: str, *, event: str, key: str | None = None, timeout: timedelta | None = None
    ) -> Any:
        """Suspend until event `event` (with correlation `key`) arrives; its payload, or None
        on time-out. An event that arrived before the wait is taken, not lost."""
        key = key or ""
        step = self._enter(name, Kind.EVENT)
        if step and step.status == Step.Status.COMPLETED:
            return step.result
        self._guard_worker_losses(name)
        received, payload = _delivered_payload(self.mission, name) if step else (False, None)
        if received:
            # Woken by a delivery, which never changes once made: nothing to claim under the
            # mission's lock, so the checkpoint can take the one-statement path.
            checkpoint = self._event_resumed(
                name, step, event=event, key=key, payload=payload, received=True
            )
            self._commit(checkpoint)
            return self._after_checkpoint(checkpoint.step)
        now = timezone.now()
        until = _parse_time(step.wait.get("until")) if step else _due_at(now, timeout)
        with self._commit_block() as commit:
            received, payload = _claim_event(self.mission, name, event=event, key=key)
            if received or (until and now >= until):
                checkpoint = self._event_resumed(
                    name, step, event=event, key=key, payload=payload, received=received
                )
            else:
                wait = {"event": event, "key": key, "until": until.isoformat() if until else None}
                label = f"event '{event}'" + (f" for {key}" if key else "")
                checkpoint = self._waiting_checkpoint(
                    name,
                    Kind.EVENT,
                    step,
                    wait=wait,
                    waiting_on=Mission.WaitingOn.EVENT,
                    label=label,
                    until=until,
                )
                checkpoint.mission_updates.update(waiting_event=event, waiting_event_key=key)
            commit(checkpoint)
        if checkpoint.step.status == Step.Status.WAITING:
            raise _Yield(Outcome.WAITING)
        return self._after_checkpoint(checkpoint.step)

    def _event_resumed(
        self,
        name: str,
        step: Step | None,
        *,
        event: str,
        key: str,
        payload: Any,
        received: bool,
    ) -> _Checkpoint:
        """The wait's checkpoint once the event arrived (`received`) or the wait timed out."""
        checkpoint = self._completed_checkpoint(name, Kind.EVENT, step, result=payload, attempts=1)
        message = f"Received event '{event}'" if received else f"Gave up waiting for '{event}'"
        checkpoint.observations.append(
            _observation("resumed", message, step=name, data={"event": event, "key": key})
        )
        return checkpoint

    def wait_for_decision(
        self,
        name: str,
        *,
        role: str,
        title: str,
        summary: str = "",
        context: dict | None = None,
        options: tuple[str, ...] | list[str] = ("approved", "rejected"),
        timeout: timedelta | None = None,
        remind_after: timedelta | None = None,
        escalate_to: str | None = None,
    ) -> DecisionResult:
        """Put a Decision in the queue of `role` and suspend until someone decides it (or the
        time-out expires it: outcome "expired"). With `remind_after`, the role is reminded when
        it has not decided by then, and the role `escalate_to` may decide it once as long again
        has passed (docs/decision-queue.md)."""
        _check_reminder(timeout=timeout, remind_after=remind_after, escalate_to=escalate_to)
        step = self._enter(name, Kind.DECISION)
        if step and step.status == Step.Status.COMPLETED:
            return DecisionResult.from_json(step.result)
        self._guard_worker_losses(name)
        settled = step and decision_outcome(mission_id=self.mission.id, step_name=name)
        if settled:
            # Woken by a decision, which never changes once made: the checkpoint needs no
            # lock held across a read, so it can take the one-statement path.
            checkpoint = self._decision_resumed(name, step, settled)
            self._commit(checkpoint)
            return DecisionResult.from_json(self._after_checkpoint(checkpoint.step))
        with self._commit_block() as commit:
            checkpoint = self._decision_checkpoint(
                name,
                step,
                role=role,
                title=title,
                summary=summary,
                context=context,
                options=options,
                timeout=timeout,
                reminder={"remind_after": remind_after, "escalate_to": escalate_to},
            )
            commit(checkpoint)
        if checkpoint.step.status == Step.Status.WAITING:
            raise _Yield(Outcome.WAITING)
        return DecisionResult.from_json(self._after_checkpoint(checkpoint.step))

    def _decision_checkpoint(
        self,
        name: str,
        step: Step | None,
        *,
        role: str,
        title: str,
        summary: str,
        context: dict | None,
        options,
        timeout: timedelta | None,
        reminder: dict,
    ) -> _Checkpoint:
        if step is None:
            due = _due_at(timezone.now(), timeout)
            decision_open(
                mission=self.mission,
                step_name=name,
                role=role,
                title=title,
                summary=summary,
                context=to_json(context or {}),
                options=list(options),
                due_at=due,
                **reminder,  # remind_after, escalate_to
            )
            wait = {"role": role, "title": title, "until": due.isoformat() if due else None}
            label = f"{role} decision: {title}"
            return self._waiting_checkpoint(
                name,
                Kind.DECISION,
                None,
                wait=wait,
                waiting_on=Mission.WaitingOn.DECISION,
                label=label,
                until=due,
            )
        result = decision_outcome(mission_id=self.mission.id, step_name=name)
        until = _parse_time(step.wait.get("until"))
        if result is None and until and timezone.now() >= until:
            result = decision_expire(mission_id=self.mission.id, step_name=name)
        if result is None:
            label = f"{step.wait['role']} decision: {step.wait['title']}"
            return self._waiting_checkpoint(
                name,
                Kind.DECISION,
                step,
                wait=step.wait,
                waiting_on=Mission.WaitingOn.DECISION,
                label=label,
                until=until,
            )
        return self._decision_resumed(name, step, result)

    def _decision_resumed(self, name: str, step: Step, result: dict) -> _Checkpoint:
        checkpoint = self._completed_checkpoint(
            name, Kind.DECISION, step, result=result, attempts=1
        )
        who = f" by {result['decided_by']}" if result.get("decided_by") else ""
        message = f"Resumed after {result['outcome']}{who}: {step.wait['title']}"
        checkpoint.observations.append(_observation("resumed", message, step=name, data=result))
        return checkpoint

    # missions made of missions (missions/composition.py) ------------------------------

    def start_mission(
        self,
        name: str,
        *,
        type: str,
        input: Any,
        key: str | None = None,
        title: str = "",
        priority: int = 0,
    ) -> str:
        """Start a child mission exactly once (the same one on replay); its id. `title` names
        the child for people ("Bank reconciliation"), else its type's title; `priority`
        (-10..10) as on any start."""
        from missions import composition  # composition builds on this module

        return composition.start_mission(
            self, name, type=type, input=input, key=key, title=title, priority=priority
        )

    def wait_for_missions(
        self, name: str, ids: list[str], *, timeout: timedelta | None = None
    ) -> list[dict]:
        """Suspend until every listed child mission is final; their id, type, status,
        outcome, summary, verdict and error, in order."""
        from missions import composition

        return composition.wait_for_missions(self, name, ids, timeout=timeout)

    def wait_any(
        self, name: str, *waits: Any, timeout: timedelta | None = None
    ) -> tuple[int | None, Any]:
        """Suspend until the first of `waits` (Decision, Event, Timer, MissionDone) settles:
        its index and value; (None, None) on time-out. The others are withdrawn."""
        from missions import composition

        return composition.wait_any(self, name, *waits, timeout=timeout)

    # step execution --------------------------------------------------------------------

    def _recorded_here(self, name: str, kind: str) -> Step | None:
        """The step recorded at the current position, if the code asks for that one."""
        if self._position < len(self._steps):
            recorded = self._steps[self._position]
            if recorded.name == name and recorded.kind == kind:
                return recorded
        return None

    def _enter(self, name: str, kind: str) -> Step | None:
        """Move to the next position; the recorded step there, checked against the code."""
        if self._step_done:  # one step per task: the next one is the next task's
            raise _Yield(Outcome.CONTINUE)
        if name in self._names and self._names[name].position != self._position:
            raise IncompatibleCodeChange(
                f"mission code changed incompatibly: step '{name}' is asked for at position "
                f"{self._position} but was recorded at position {self._names[name].position}"
            )
        recorded = self._steps[self._position] if self.replaying else None
        if recorded and (recorded.name != name or recorded.kind != kind):
            raise IncompatibleCodeChange(
                f"mission code changed incompatibly: at position {self._position} the code asks "
                f"for {kind} '{name}' but the mission recorded {recorded.kind} '{recorded.name}'"
            )
        self._position += 1
        if self.dry_run and (recorded is None or recorded.status != Step.Status.COMPLETED):
            raise _Yield(Outcome.SKIPPED)  # the recorded history matched up to here
        return recorded

    def _guard_worker_losses(self, name: str) -> None:
        losses = self.mission.lost_leases
        if losses >= settings.STUDIOX_MAX_WORKER_LOSSES:
            raise NonRetryableError(
                f"step '{name}' was interrupted {losses} times (its worker stopped each time); "
                "fix the cause and retry the mission"
            )

    def _run_step(
        self,
        name: str,
        kind: str,
        runner: Callable[[], Any],
        *,
        retry: RetryPolicy | None,
        title: StepTitle = None,
    ) -> Any:
        step = self._enter(name, kind)
        if step and step.status == Step.Status.COMPLETED:
            return step.result
        policy = retry or DEFAULT_RETRY
        if step and step.status == Step.Status.RETRYING:
            retry_at = _parse_time(step.wait.get("retry_at"))
            if retry_at and timezone.now() < retry_at:  # woken early: keep waiting
                checkpoint = self._waiting_checkpoint(
                    name,
                    kind,
                    step,
                    wait=step.wait,
                    waiting_on=Mission.WaitingOn.RETRY,
                    label=f"retry of {name}",
                    until=retry_at,
                )
                self._commit(checkpoint)
                raise _Yield(Outcome.WAITING)
        self._guard_worker_losses(name)
        attempts = (step.attempts if step else 0) + 1 + self.mission.lost_leases
        budget_start = step.wait.get("budget_start", 0) if step else 0
        self._current_step_name = name
        started = timezone.now()
        try:
            if kind == Kind.TRANSACTION:
                return self._run_transaction(name, step, runner, attempts=attempts, title=title)
            result = _checked_size(name, to_json(runner()))
        except (_Yield, StaleLease):
            raise
        except RATE_LIMITED as limited:
            self._wait_for_rate_limit(name, kind, step, limited=limited, budget_start=budget_start)
        except Exception as exc:
            self._retry_or_fail(
                name,
                kind,
                step,
                exc=exc,
                policy=policy,
                attempts=attempts,
                budget_start=budget_start,
            )
        finally:
            self._current_step_name = None
        checkpoint = self._completed_checkpoint(
            name,
            kind,
            step,
            result=result,
            attempts=attempts,
            started=started,
            title=_step_title(title, result, name=name),
        )
        self._commit(checkpoint)
        return self._after_checkpoint(checkpoint.step)

    def _run_transaction(
        self,
        name: str,
        step: Step | None,
        runner: Callable[[], Any],
        *,
        attempts: int,
        title: StepTitle = None,
    ) -> Any:
        try:
            with self._commit_block() as commit:
                result = _checked_size(name, to_json(runner()))
                checkpoint = self._completed_checkpoint(
                    name,
                    Kind.TRANSACTION,
                    step,
                    result=result,
                    attempts=attempts,
                    title=_step_title(title, result, name=name),
                )
                commit(checkpoint)
        except (_Yield, StaleLease):
            raise
        except Exception as exc:
            self._retry_or_fail(
                name,
                Kind.TRANSACTION,
                step,
                exc=exc,
                policy=DEFAULT_RETRY,
                attempts=attempts,
                budget_start=step.wait.get("budget_start", 0) if step else 0,
            )
        return self._after_checkpoint(checkpoint.step)

    def _wait_for_rate_limit(
        self,
        name: str,
        kind: str,
        step: Step | None,
        *,
        limited: mcp_client.ToolRateLimited | llm.LLMRateLimited,
        budget_start: int,
    ) -> NoReturn:
        """Over a rate limit nothing was called: suspend until the next slot. The step asks
        the limiter again then, so it takes its slot when it calls, never ahead of time."""
        slot = limited.next_slot
        label = f"{limited.limit}, next slot {slot:%H:%M:%S} UTC"
        checkpoint = self._waiting_checkpoint(
            name,
            kind,
            step,
            wait={
                "rate_limit": limited.limit,
                "until": slot.isoformat(),
                "budget_start": budget_start,
            },
            waiting_on=Mission.WaitingOn.RATE_LIMIT,
            label=label,
            until=slot,
        )
        if checkpoint.created:
            checkpoint.step.attempts = 0  # waiting for a slot is no attempt
        for line in checkpoint.observations:  # the first time only: not a line per re-check
            line["message"] = f"Waiting for {label}"
            line["data"].update(limit=limited.limit, next_slot=slot.isoformat())
        self._commit(checkpoint)
        enqueue_wake(self.mission.id, at=slot)
        raise _Yield(Outcome.WAITING)

    def _retry_or_fail(
        self,
        name: str,
        kind: str,
        step: Step | None,
        *,
        exc: Exception,
        policy: RetryPolicy,
        attempts: int,
        budget_start: int,
    ) -> NoReturn:
        """After a step raised: schedule its retry if `policy` allows another attempt, else
        fail the mission. `budget_start` is the attempt count an operator retry started from."""
        error = f"{type(exc).__name__}: {exc}"
        tries = attempts - budget_start
        retry_after = getattr(exc, "retry_after", None)
        if policy.is_retryable(exc) and tries < policy.max_attempts:
            delay = policy.delay(tries)
            if retry_after:
                delay = max(delay, timedelta(seconds=float(retry_after)))
            retry_at = timezone.now() + delay
            checkpoint = self._waiting_checkpoint(
                name,
                kind,
                step,
                wait={"retry_at": retry_at.isoformat(), "budget_start": budget_start},
                waiting_on=Mission.WaitingOn.RETRY,
                label=f"retry of {name}",
                until=retry_at,
            )
            checkpoint.step.status = Step.Status.RETRYING
            checkpoint.step.attempts = attempts
            checkpoint.step.error = error
            checkpoint.observations = [
                _observation(
                    "retrying",
                    f"Step '{name}' failed (attempt {tries} of {policy.max_attempts}); "
                    f"retrying in {delay.total_seconds():.0f}s",
                    step=name,
                    data={"error": error, "attempt": tries, "technical": True},
                )
            ]
            self._commit(checkpoint)
            raise _Yield(Outcome.WAITING)
        if not policy.is_retryable(exc):
            message = str(exc)
        else:
            message = f"step '{name}' failed after {tries} attempts: {error}"
        self._fail_step(name, kind, step, attempts=attempts, message=message)

    # checkpoints -------------------------------------------------------------------------

    def _recorded_or_new_step(
        self, step: Step | None, name: str, kind: str, *, started: datetime | None = None
    ) -> tuple[Step, bool]:
        """The recorded `step`, or a new unsaved one at the current position; and whether it
        is new (inserted, not updated, by the checkpoint)."""
        if step is not None:
            return step, False
        step = Step(
            mission_id=self.mission.id,
            name=name,
            position=self._position - 1,
            kind=kind,
            attempts=1,
            idempotency_key=self._key(name),
            started_at=started or timezone.now(),
        )
        return step, True

    def _completed_checkpoint(
        self,
        name: str,
        kind: str,
        step: Step | None,
        *,
        result: Any,
        attempts: int,
        started: datetime | None = None,
        title: str = "",
    ) -> _Checkpoint:
        row, created = self._recorded_or_new_step(step, name, kind, started=started)
        row.status, row.result, row.error = Step.Status.COMPLETED, result, ""
        row.title = title or row.title
        row.attempts = max(attempts, row.attempts, 1)
        row.finished_at = timezone.now()
        checkpoint = _Checkpoint(row, created, carry_on=kind in _WAIT_KINDS)
        checkpoint.mission_updates = {
            "current_step": name,
            "step_count": F("step_count") + 1,
            "waiting_on": "",
            "waiting_detail": "",
            "waiting_since": None,
            "wake_at": None,
            "waiting_event": "",
            "waiting_event_key": "",
        }
        # Titled, the line says what the step did in business terms; untitled, it is a
        # technical line that only the mission's technical view shows.
        if row.title:
            message, data = row.title, {"attempts": row.attempts, "title": row.title}
        else:
            message = f"Completed {_describe(kind)} '{name}'"
            data = {"attempts": row.attempts, "technical": True}
        checkpoint.observations.append(
            _observation("step_completed", message, step=name, data=data)
        )
        return checkpoint

    def _waiting_checkpoint(
        self,
        name: str,
        kind: str,
        step: Step | None,
        *,
        wait: dict,
        waiting_on: str,
        label: str,
        until: datetime | None,
    ) -> _Checkpoint:
        """Suspend on `step`: `wait` is what the step records, `label` what the mission
        shows, `until` when the scheduler wakes it (None: only its event or decision does)."""
        row, created = self._recorded_or_new_step(step, name, kind)
        row.status, row.wait = Step.Status.WAITING, wait
        checkpoint = _Checkpoint(row, created)
        since = (
            self.mission.waiting_since if step and self.mission.waiting_on == waiting_on else None
        )
        checkpoint.mission_updates = {
            "current_step": name,
            "waiting_on": waiting_on,
            "waiting_detail": label[:300],
            "waiting_since": since or timezone.now(),
            "wake_at": until,
            "status_to": Status.WAITING,
        }
        if created or not since:
            until_text = f" (until {until:%Y-%m-%d %H:%M} UTC)" if until else ""
            checkpoint.observations.append(
                _observation(
                    "waiting",
                    f"Waiting for {label}{until_text}",
                    step=name,
                    data={
                        "waiting_on": waiting_on,
                        "technical": waiting_on == Mission.WaitingOn.RETRY,
                    },
                )
            )
        return checkpoint

    def _fail_step(
        self, name: str, kind: str, step: Step | None, *, attempts: int, message: str
    ) -> NoReturn:
        """Record the step as failed and fail the mission with it."""
        row, created = self._recorded_or_new_step(step, name, kind)
        row.status, row.error, row.attempts = Step.Status.FAILED, message, max(attempts, 1)
        row.finished_at = timezone.now()
        self._commit_failure(_Checkpoint(row, created), message, step_name=name)

    def _commit_failure(self, checkpoint: _Checkpoint, message: str, *, step_name: str) -> NoReturn:
        checkpoint.mission_updates = {
            "status_to": Status.FAILED,
            "error": message,
            "finished_at": timezone.now(),
            "waiting_on": "",
            "waiting_detail": "",
            "wake_at": None,
        }
        if step_name:  # a failed mission's current step is the one that failed
            checkpoint.mission_updates["current_step"] = step_name
        checkpoint.observations.append(_observation("failed", f"Failed: {message}", step=step_name))
        self._commit(checkpoint)
        raise _Yield(Outcome.FINISHED)

    def finish(self, verdict: Any) -> None:
        verdict = to_json(verdict.to_json() if isinstance(verdict, Verdict) else verdict)
        outcome, summary = _outcome_and_summary(verdict)
        message = summary or (f"Verdict: {outcome}" if outcome else "Verdict reached")
        checkpoint = _Checkpoint(None, False)  # type: ignore[arg-type]
        checkpoint.mission_updates = {
            "status_to": Status.SUCCEEDED,
            "verdict": verdict,
            "outcome": outcome,
            "summary": summary,
            "finished_at": timezone.now(),
            "waiting_on": "",
            "waiting_detail": "",
            "wake_at": None,
        }
        data = {"verdict": verdict, "outcome": outcome}
        checkpoint.observations.append(_observation("verdict", message, data=data))
        self._commit(checkpoint)

    def fail(self, message: str) -> NoReturn:
        """Fail the mission outside any step; the pass ends here."""
        self._commit_failure(_Checkpoint(None, False), message, step_name="")  # type: ignore[arg-type]

    def _commit_block(self):
        return _CommitBlock(self)

    def _commit(self, checkpoint: _Checkpoint) -> None:
        # A plain step's checkpoint is one statement, atomic on its own: no BEGIN/COMMIT
        # round trips. Everything else, or a fence that fails, takes the transaction below.
        if not connection.in_atomic_block and self._write(checkpoint, fast_only=True):
            return
        with _CommitBlock(self, fence_first=False) as commit:
            commit(checkpoint)

    def _write(self, checkpoint: _Checkpoint, *, fast_only: bool = False) -> bool:
        """Fence, then the step, the mission state and observations; inside an atomic block
        unless `fast_only` (then False means nothing was written)."""
        if not postgres_fast_paths.lease_connection_held(self.mission):
            # The lease committed without a flush: only its own connection proves it still holds.
            raise StaleLease(f"mission {self.mission.id}: lease taken through another connection")
        updates = dict(checkpoint.mission_updates)
        status_to = updates.pop("status_to", Status.RUNNING)
        now = timezone.now()
        keep_lease = status_to == Status.RUNNING and (
            checkpoint.carry_on or time.monotonic() < self._deadline
        )
        lines = [*self._pending_observations, *checkpoint.observations]
        written = self._write_fast(
            checkpoint, updates, status_to=status_to, lines=lines, keep_lease=keep_lease, now=now
        )
        if not written:
            if fast_only:
                return False
            # A kept lease is renewed by the heartbeat, not here: fewer index writes per step.
            lease = (
                {}
                if keep_lease
                else {"lease_owner": "", "lease_expires_at": None, "enqueued_at": now}
            )
            self._write_with_orm(checkpoint, updates, status_to=status_to, lease=lease, lines=lines)
        self._keep_lease = keep_lease and not self.interrupted
        self._pending_observations = []
        self.mission.lost_leases = 0
        if checkpoint.step is not None and checkpoint.created:
            self._steps.append(checkpoint.step)
            self._names[checkpoint.step.name] = checkpoint.step
        if status_to == Status.RUNNING and "step_count" in updates:
            self.mission.step_count += 1
        return True

    def _write_fast(
        self,
        checkpoint: _Checkpoint,
        updates: dict,
        *,
        status_to: str,
        lines: list[dict],
        keep_lease: bool,
        now: datetime,
    ) -> bool:
        """The checkpoint as one statement, where PostgreSQL's fast paths serve it: a completed
        step, or a verdict that ends nothing else. False if they do not, or the fence failed."""
        if postgres_fast_paths.applicable(checkpoint.step, checkpoint.created, status_to):
            return postgres_fast_paths.complete_step(
                mission=self.mission,
                token=self._token,
                step=checkpoint.step,
                created=checkpoint.created,
                lines=lines,
                keep_lease=keep_lease,
                now=now,
            )
        if self._verdict_ends_nothing_else(checkpoint, status_to):
            return postgres_fast_paths.write_verdict(
                mission=self.mission, token=self._token, updates=updates, lines=lines, now=now
            )
        return False

    def _verdict_ends_nothing_else(self, checkpoint: _Checkpoint, status_to: str) -> bool:
        """A verdict with no parent to wake and no concurrency slot to hand on (every one-step
        mission started over the API, for one): the ORM path's transaction buys it nothing."""
        from missions import concurrency  # it imports the engine (through handover)

        return (
            checkpoint.step is None
            and status_to == Status.SUCCEEDED
            and self.mission.parent_id is None
            and postgres_fast_paths.on_postgresql()
            and not concurrency.is_limited(self.mission.type)
        )

    def _write_with_orm(
        self,
        checkpoint: _Checkpoint,
        updates: dict,
        *,
        status_to: str,
        lease: dict,
        lines: list[dict],
    ) -> None:
        now = timezone.now()
        fenced = Mission.objects.filter(id=self.mission.id, fencing_token=self._token)
        done = fenced.filter(status=Status.RUNNING).update(
            status=status_to, lost_leases=0, updated_at=now, **updates, **lease
        )
        if not done:
            # Paused or cancelled while the step ran: keep the step, stop here.
            progress = {k: v for k, v in updates.items() if k in ("current_step", "step_count")}
            release = {"lease_owner": "", "lease_expires_at": None}
            if not fenced.update(**progress, **release, updated_at=now):
                raise StaleLease(f"mission {self.mission.id} was taken over by another worker")
            self.interrupted = True
        elif status_to in Mission.FINAL_STATUSES and self.mission.parent_id is not None:
            from missions import composition

            composition.mission_ended(self.mission)  # wakes the parent in this transaction
        if checkpoint.step is not None:
            if checkpoint.created:
                checkpoint.step.save(force_insert=True)
            else:
                checkpoint.step.save(force_update=True)
        for line in lines:
            observation_record(
                mission=self.mission,
                step_name=line.get("step", ""),
                kind=line["kind"],
                message=line["message"],
                data=line["data"],
            )
        if done and status_to in Mission.FINAL_STATUSES:
            from missions import concurrency

            # Last in the transaction: every start and end of a limited type waits for the
            # limit row this takes, so it is held only until the commit.
            concurrency.mission_slot_freed(self.mission)  # admits the next queued, if limited

    def _after_checkpoint(self, step: Step) -> Any:
        """After a step committed: carry on in-process while the time slice lasts. Otherwise
        the mission's own code still runs on to its next durable call, where the pass ends: a
        mission whose code returns after this step reaches its verdict in this task, not in
        a task of its own. (That code runs again on replay; it has no side effects.)"""
        if self.interrupted:
            raise _Yield(Outcome.STOPPED)
        if not self._keep_lease:
            self._step_done = True
        return step.result

    def cache(self) -> None:
        _remember(self.mission.id, self._token, self._steps, settled_from=self._settled)


class _CommitBlock:
    """`with ctx._commit_block() as commit:` — one atomic checkpoint; writes inside the block
    (a decision, an event claim, a ctx.transaction body) share it."""

    def __init__(self, ctx: MissionContext, *, fence_first: bool = True):
        self.ctx = ctx
        self.fence_first = fence_first
        self.atomic = transaction.atomic()

    def __enter__(self):
        self.atomic.__enter__()
        if self.fence_first:
            try:
                self._fence()
            except BaseException as exc:
                self.atomic.__exit__(type(exc), exc, exc.__traceback__)
                raise
        return self.ctx._write

    def _fence(self) -> None:
        # Fence first: the UPDATE takes the mission's row lock, so a stale worker stops here
        # before the block's body writes anything.
        mine = Mission.objects.filter(id=self.ctx.mission.id, fencing_token=self.ctx._token)
        if mine.filter(status=Status.RUNNING).update(updated_at=timezone.now()):
            return
        if mine.exists():  # paused or cancelled: nothing of this block is written
            self.ctx.interrupted = True
            raise _Yield(Outcome.STOPPED)
        raise StaleLease(f"mission {self.ctx.mission.id} was taken over by another worker")

    def __exit__(self, exc_type, exc, tb):
        return self.atomic.__exit__(exc_type, exc, tb)


# --- helpers ------------------------------------------------------------------------------


def _observation(kind: str, message: str, *, step: str = "", data: dict | None = None) -> dict:
    """A rail line waiting for the checkpoint that writes it."""
    return {"kind": kind, "message": message, "step": step, "data": to_json(data or {})}


def _outcome_and_summary(verdict: Any) -> tuple[str, str]:
    """The business answer and its one line, as a verdict declares them ("" when it does not);
    cut to their columns' lengths rather than failing a mission that reached its end."""
    if not isinstance(verdict, dict):
        return "", ""
    outcome, summary = verdict.get("outcome"), verdict.get("summary")
    outcome = str(outcome).strip()[:50] if isinstance(outcome, str | int | bool) else ""
    summary = " ".join(summary.split())[:300] if isinstance(summary, str) else ""
    return outcome, summary


def _step_title(title: str | Callable[[Any], str] | None, result: Any, *, name: str) -> str:
    """The step's line in business terms; a title that cannot be made leaves the technical one."""
    if title is None:
        return ""
    try:
        text = title(result) if callable(title) else title
    except Exception:
        logger.warning("title of step '%s' could not be made", name, exc_info=True)
        return ""
    return " ".join(str(text).split())[:300]


def _describe(kind: str) -> str:
    return {"tool": "tool call", "llm": "LLM call", "transaction": "transaction"}.get(kind, "step")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _check_reminder(
    *, timeout: timedelta | None, remind_after: timedelta | None, escalate_to: str | None
) -> None:
    # Authoring mistakes fail the mission's first run, where its author sees them.
    if escalate_to and remind_after is None:
        raise ValueError("escalate_to needs remind_after: escalation follows the reminder")
    if remind_after is not None and remind_after <= timedelta(0):
        raise ValueError("remind_after must be a positive timedelta")
    if remind_after is not None and timeout is not None and remind_after >= timeout:
        raise ValueError("remind_after must be shorter than timeout, or the decision expires first")


def _due_at(now: datetime, timeout: timedelta | None) -> datetime | None:
    return now + timeout if timeout is not None else None


def _delivered_payload(mission: Mission, step_name: str) -> tuple[bool, Any]:
    """Whether an event was delivered to this wait, and its payload."""
    if postgres_fast_paths.on_postgresql():
        return postgres_fast_paths.delivered_payload(mission_id=mission.id, step_name=step_name)
    delivered = Event.objects.filter(deliveries__mission=mission, deliveries__step_name=step_name)
    event = delivered.first()
    return event is not None, event.payload if event else None


def _claim_event(mission: Mission, step_name: str, *, event: str, key: str) -> tuple[bool, Any]:
    """The event delivered to this wait, or the oldest undelivered match, claimed atomically:
    whether there was one, and its payload."""
    received, payload = _delivered_payload(mission, step_name)
    if received:
        return True, payload
    candidates = Event.objects.filter(name=event, key=key, delivered_at=None).order_by(
        "received_at"
    )
    for candidate in candidates[:5]:
        claimed = Event.objects.filter(id=candidate.id, delivered_at=None).update(
            delivered_at=timezone.now()
        )
        if claimed:
            EventDelivery.objects.create(mission=mission, step_name=step_name, event=candidate)
            return True, candidate.payload
    return False, None
