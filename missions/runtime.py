"""The mission authoring API (docs/authoring.md): write a mission as a plain function, the
engine makes it durable. Everything here is public: mission modules and outside tests import it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import BaseModel, ValidationError

__all__ = [
    "Decision",
    "DecisionResult",
    "Event",
    "MissionDefinition",
    "MissionDone",
    "NonRetryableError",
    "RetryPolicy",
    "ScheduleSpec",
    "Timer",
    "Verdict",
    "get_definition",
    "load_mission_modules",
    "mission",
    "registered_definitions",
    "schedule_problem",
]


class NonRetryableError(Exception):
    """Raise from a mission or a step to fail the mission at once with this message."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing step is tried again, and how long to wait in between.

    The n-th retry waits `initial_interval * backoff ** (n - 1)`, capped at `max_interval`,
    spread by ±`jitter` so that many missions failing together do not retry together.
    Exceptions of the `non_retryable` types fail the mission at once.
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(minutes=5)
    jitter: float = 0.2
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff < 1:
            raise ValueError("backoff must be at least 1")

    def delay(self, attempt: int) -> timedelta:
        """The back-off after failed attempt number `attempt` (1-based)."""
        base = self.initial_interval.total_seconds() * self.backoff ** (attempt - 1)
        capped = min(base, self.max_interval.total_seconds())
        spread = capped * self.jitter
        return timedelta(seconds=max(0.0, capped + random.uniform(-spread, spread)))

    def is_retryable(self, exc: BaseException) -> bool:
        return not isinstance(exc, (NonRetryableError, *self.non_retryable))


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class DecisionResult:
    """What `ctx.wait_for_decision` returns: the outcome is one of the options, or "expired"
    (the time-out passed) or "withdrawn"."""

    outcome: str
    comment: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict) -> DecisionResult:
        decided_at = data.get("decided_at")
        return cls(
            outcome=data["outcome"],
            comment=data.get("comment") or "",
            decided_by=data.get("decided_by"),
            decided_at=datetime.fromisoformat(decided_at) if decided_at else None,
        )

    def to_json(self) -> dict:
        return {
            "outcome": self.outcome,
            "comment": self.comment,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }


@dataclass(frozen=True)
class Verdict:
    """What a mission may return: its business answer (`outcome`, e.g. "refunded" or
    "rejected"), that answer in one line for people (`summary`), and the JSON `details`.

    A mission that returns a plain dict instead gets its "outcome" and "summary" keys read."""

    outcome: str
    summary: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        summary = {"summary": self.summary} if self.summary else {}
        return {**self.details, "outcome": self.outcome, **summary}


# What `ctx.wait_any` waits for: the first of them to settle wins (docs/authoring.md).


@dataclass(frozen=True)
class Decision:
    """A decision in the queue of `role`; settles when someone decides it."""

    role: str
    title: str
    summary: str = ""
    context: dict | None = None
    options: tuple[str, ...] = ("approved", "rejected")


@dataclass(frozen=True)
class Event:
    """An external event `event` with correlation `key`; settles when it arrives."""

    event: str
    key: str | None = None


@dataclass(frozen=True)
class Timer:
    """Settles once `duration` has passed since the wait began."""

    duration: timedelta


@dataclass(frozen=True)
class MissionDone:
    """Settles when the child mission `id` is final (succeeded, failed or cancelled)."""

    id: str


CATCH_UP_POLICIES = ("skip", "once", "all")


def schedule_problem(expression: str, timezone: str = "UTC") -> str | None:
    """Why `expression` (cron: five fields, or six with the seconds last) in the IANA
    `timezone` cannot schedule a mission, or None when it can."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone '{timezone}': use an IANA name such as Europe/Paris"
    if not expression.startswith("@") and len(expression.split()) not in (5, 6):
        return (
            f"'{expression}' is not a cron expression: five fields (minute hour day month "
            "weekday), or six with the seconds last"
        )
    try:
        croniter(expression, datetime.now(zone)).get_next(datetime)
    except CroniterBadDateError:
        return f"'{expression}' never fires"
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        return f"'{expression}' is not a valid cron expression: {exc}"
    return None


@dataclass(frozen=True)
class ScheduleSpec:
    """A recurring mission declared in code (`@mission(..., schedule=...)`); the schedules
    app keeps it as a Schedule row."""

    cron: str
    input: dict
    timezone: str = "UTC"
    catch_up: str = "once"


@dataclass(frozen=True)
class MissionDefinition:
    name: str
    version: int
    title: str
    fn: Callable[..., Any]
    input_model: type[BaseModel] | None = None
    description: str = field(default="")
    schedule: ScheduleSpec | None = None
    # At most `concurrency` missions of this type unfinished at once, per `concurrency_key`
    # (a function of the validated input: the customer, the tenant) when given (concurrency.py).
    concurrency: int | None = None
    concurrency_key: Callable[[Any], Any] | None = None
    # Business keys people search by (input field names) and the input field holding the
    # mission's amount, shown in lists and exports (docs/authoring.md).
    searchable: tuple[str, ...] = ()
    amount: str = ""
    currency: str = ""

    def input_schema(self) -> dict:
        if self.input_model is None:
            return {"type": "object"}
        return self.input_model.model_json_schema()

    def validate_input(self, data: Any) -> dict:
        """The input as stored: validated and in JSON form. Raises pydantic.ValidationError."""
        if self.input_model is None:
            if not isinstance(data, dict):
                raise TypeError("mission input must be a JSON object")
            return data
        return self.input_model.model_validate(data).model_dump(mode="json")

    def parse_input(self, stored: dict) -> Any:
        if self.input_model is None:
            return stored
        return self.input_model.model_validate(stored)


_registry: dict[str, dict[int, MissionDefinition]] = {}


def mission(
    name: str,
    *,
    version: int = 1,
    title: str = "",
    input: type[BaseModel] | None = None,
    schedule: str = "",
    schedule_input: dict | None = None,
    schedule_timezone: str = "UTC",
    schedule_catch_up: str = "once",
    searchable: tuple[str, ...] = (),
    amount: str = "",
    currency: str = "",
    concurrency: int | None = None,
    concurrency_key: Callable[[Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(ctx, input)` as mission `name` at `version`.

    New missions start on the highest version; in-flight missions keep the version they
    started with, so keep old versions registered until their missions finish. With a
    `schedule` (cron), the mission also starts at every fire time with `schedule_input`.
    `searchable` names the input fields people search missions and decisions by; `amount`
    the input field with the mission's amount (in `currency`), shown in lists and exports.
    With `concurrency=N`, at most N missions of this type are unfinished at once (per
    `concurrency_key(input)` when given); the others queue for a slot (missions.concurrency).
    """
    if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
        raise ValueError(f"mission {name!r}: concurrency must be a positive whole number")
    if concurrency_key is not None and concurrency is None:
        raise ValueError(f"mission {name!r}: concurrency_key needs concurrency=N")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        definition = MissionDefinition(
            name=name,
            version=version,
            title=title or name.replace("_", " ").capitalize(),
            fn=fn,
            input_model=input,
            description=(fn.__doc__ or "").strip(),
            searchable=(searchable,) if isinstance(searchable, str) else tuple(searchable),
            amount=amount,
            currency=currency,
            concurrency=concurrency,
            concurrency_key=concurrency_key,
        )
        _check_business_keys(definition)
        if schedule:
            definition = _with_schedule(
                definition,
                ScheduleSpec(schedule, schedule_input or {}, schedule_timezone, schedule_catch_up),
            )
        existing = _registry.setdefault(name, {}).get(version)
        if existing and existing.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"mission {name!r} version {version} is already registered")
        _registry[name][version] = definition
        return fn

    return register


def _check_business_keys(definition: MissionDefinition) -> None:
    # A misspelt key would silently never match: fail at import, where the author sees it.
    fields = definition.input_model.model_fields if definition.input_model else None
    for key in (*definition.searchable, *filter(None, [definition.amount])):
        if fields is not None and key not in fields:
            raise ValueError(f"mission {definition.name!r}: {key!r} is not a field of its input")
        if not key.isidentifier() or "__" in key:  # it becomes a JSON key lookup
            raise ValueError(f"mission {definition.name!r}: {key!r} is not a plain field name")


def _with_schedule(definition: MissionDefinition, spec: ScheduleSpec) -> MissionDefinition:
    # A bad schedule fails at import, where the author sees it, not at 6 a.m. in the scheduler.
    problem = schedule_problem(spec.cron, spec.timezone)
    if problem is None and spec.catch_up not in CATCH_UP_POLICIES:
        problem = f"schedule_catch_up must be one of {', '.join(CATCH_UP_POLICIES)}"
    if problem is None:
        try:
            stored = definition.validate_input(spec.input)
        except ValidationError as exc:
            fields = (
                f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()
            )
            problem = f"schedule_input is not valid input: {'; '.join(fields)}"
        except TypeError as exc:
            problem = f"schedule_input is not valid input: {exc}"
        else:
            return replace(definition, schedule=replace(spec, input=stored))
    raise ValueError(f"mission {definition.name!r}: {problem}")


def get_definition(name: str, version: int | None = None) -> MissionDefinition | None:
    """The definition of `name` at `version`, or its latest version when `version` is None."""
    versions = _registry.get(name)
    if not versions:
        return None
    return versions.get(version if version is not None else max(versions))


def registered_definitions() -> list[MissionDefinition]:
    """The latest version of every registered mission, by name."""
    return [versions[max(versions)] for _, versions in sorted(_registry.items())]


def load_mission_modules(extra: list[str] | tuple[str, ...] = ()) -> None:
    """Import the mission modules named by STUDIOX_MISSION_MODULES (the showcases app
    registers its own when Django loads it)."""
    for module_name in extra:
        import_module(module_name)
