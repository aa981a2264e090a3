"""Every way a schedule changes, and the scheduler tick that starts its missions."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from missions.runtime import get_definition, registered_definitions, schedule_problem
from missions.services import MissionError, MissionInputError, mission_start
from schedules.cron import Due, due_fire_times, next_fire_time
from schedules.models import Schedule, ScheduleFire
from studiox.safe_input import json_problem

log = logging.getLogger(__name__)

TICK_BATCH = 100


class ScheduleInvalid(Exception):
    """A schedule that cannot be saved; `errors` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _input_errors(definition, data: Any) -> tuple[dict | None, list[str]]:
    try:
        return definition.validate_input(data), []
    except PydanticValidationError as exc:
        return None, [
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors()
        ]
    except TypeError as exc:
        return None, [str(exc)]


def schedule_validate(*, mission_type: str, cron: str, timezone: str, input: Any) -> dict:
    """The input as a mission stores it; raises ScheduleInvalid naming each bad field."""
    errors: dict[str, list[str]] = {}
    problem = schedule_problem(cron, timezone)
    if problem and problem.startswith("unknown time zone"):
        errors["timezone"] = [problem]
        problem = schedule_problem(cron)  # the expression on its own
    if problem:
        errors["cron"] = [problem]
    definition = get_definition(mission_type)
    stored = None
    if definition is None:
        errors["mission_type"] = [f"unknown mission type '{mission_type}'"]
    else:
        stored, messages = _input_errors(definition, input)
        unstorable = json_problem({"input": stored}) if stored is not None else None
        if unstorable is not None:
            messages.append(unstorable.message)
        if messages:
            errors["input"] = messages
    if errors:
        raise ScheduleInvalid(errors)
    return stored


def _next_fire(schedule: Schedule) -> datetime | None:
    if not schedule.enabled:
        return None
    return next_fire_time(schedule.cron, schedule.timezone, after=schedule.handled_until)


def schedule_save(
    *, schedule: Schedule, by: AbstractBaseUser | None = None, now: datetime | None = None
) -> Schedule:
    """Save a schedule an operator edited (validated first with `schedule_validate`).

    Its missions run as `run_as`, by default the operator `by` who saved it. A new or
    re-enabled schedule fires from now on: the time it did not exist or was off is not a
    missed fire time.
    """
    now = now or timezone.now()
    was_enabled = (
        Schedule.objects.filter(pk=schedule.pk).values_list("enabled", flat=True).first()
        if schedule.pk
        else None
    )
    if schedule.source == Schedule.Source.ADMIN and schedule.run_as_id is None:
        schedule.run_as = by if by is not None and by.is_authenticated else None
    if schedule.handled_until is None or (schedule.enabled and was_enabled is False):
        schedule.handled_until = now
    schedule.next_fire_at = _next_fire(schedule)
    schedule.save()
    return schedule


def schedule_set_enabled(*, schedule: Schedule, enabled: bool, now: datetime | None = None):
    """Turn a schedule on (it fires from now on) or off."""
    schedule.enabled = enabled
    return schedule_save(schedule=schedule, now=now)


def schedules_sync_code(*, now: datetime | None = None) -> int:
    """Make the schedules declared with `@mission(schedule=...)` rows (source "code"); one
    whose declaration is gone is disabled. Returns how many rows changed."""
    now = now or timezone.now()
    declared = {d.name: d.schedule for d in registered_definitions() if d.schedule}
    changed = 0
    for schedule in Schedule.objects.filter(source=Schedule.Source.CODE):
        spec = declared.pop(schedule.mission_type, None)
        if spec is None:
            if schedule.enabled:
                log.warning("schedule %s is no longer declared in code: disabled", schedule)
                schedule_set_enabled(schedule=schedule, enabled=False, now=now)
                changed += 1
            continue
        wanted = {
            "cron": spec.cron,
            "input": spec.input,
            "timezone": spec.timezone,
            "catch_up": spec.catch_up,
        }
        if any(getattr(schedule, key) != value for key, value in wanted.items()):
            for key, value in wanted.items():
                setattr(schedule, key, value)
            schedule_save(schedule=schedule, now=now)
            changed += 1
    for mission_type, spec in declared.items():
        changed += _create_code_schedule(mission_type, spec, now=now)
    return changed


def _create_code_schedule(mission_type: str, spec, *, now: datetime) -> int:
    taken = Schedule.objects.filter(name=mission_type).exists()
    schedule = Schedule(
        name=f"{mission_type} (code)" if taken else mission_type,
        mission_type=mission_type,
        cron=spec.cron,
        input=spec.input,
        timezone=spec.timezone,
        catch_up=spec.catch_up,
        source=Schedule.Source.CODE,
    )
    try:
        with transaction.atomic():
            schedule_save(schedule=schedule, now=now)
    except IntegrityError:
        return 0  # another process synced it first
    return 1


@dataclass
class TickResult:
    schedules: int = 0
    started: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: TickResult) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def schedules_tick(*, now: datetime | None = None) -> TickResult:
    """One scheduler pass (Celery beat, every STUDIOX_TICK_SECONDS): start the missions of
    every due fire time, exactly once each, whatever other scheduler runs beside this one."""
    now = now or timezone.now()
    schedules_sync_code(now=now)
    due = list(
        Schedule.objects.filter(enabled=True, next_fire_at__lte=now)
        .order_by("next_fire_at")
        .values_list("id", flat=True)[:TICK_BATCH]
    )
    result = TickResult()
    for schedule_id in due:
        try:
            result.add(schedule_fire_due(schedule_id=schedule_id, now=now))
        except Exception:
            # Rolled back whole, so the next tick tries again; the other schedules go on.
            log.exception("schedule %s: the tick failed", schedule_id)
    return result


def schedule_fire_due(*, schedule_id: int, now: datetime) -> TickResult:
    """Start the missions of one schedule's due fire times, by its catch-up policy.

    The fire rows, the missions and the schedule's new position commit together: a crash
    anywhere in between leaves nothing, and the next tick does it all again.
    """
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=schedule_id, enabled=True, next_fire_at__lte=now)
            .select_related("run_as")
            .first()
        )
        if schedule is None:
            return TickResult()  # another scheduler holds it, or has just done it
        due = due_fire_times(
            schedule.cron,
            schedule.timezone,
            after=schedule.handled_until or schedule.created_at,
            until=now,
            keep=settings.STUDIOX_SCHEDULE_CATCH_UP_MAX,
        )
        result = TickResult(schedules=1)
        fires, result.skipped = _plan(schedule, due, now=now)
        for fire_time, missed in fires:
            outcome = _fire(schedule, fire_time, missed=missed)
            result.started += outcome == STARTED
            result.failed += outcome == FAILED
        if due.latest:
            schedule.handled_until = due.latest[-1]
        schedule.skipped_count += result.skipped
        schedule.next_fire_at = _next_fire(schedule)
        schedule.save(update_fields=["handled_until", "skipped_count", "next_fire_at"])
        return result


def _plan(schedule: Schedule, due: Due, *, now: datetime) -> tuple[list[tuple[datetime, int]], int]:
    """The fire times to start (each with the missed ones it stands for) and how many missed
    fire times start nothing of their own."""
    if not due.latest:
        return [], 0
    at_least = "" if due.counted_all else "at least "
    if schedule.catch_up == Schedule.CatchUp.ONCE:
        fires = [(due.latest[-1], due.total - 1)]
    elif schedule.catch_up == Schedule.CatchUp.ALL:
        fires = [(fire_time, 0) for fire_time in due.latest]
        if due.total > len(fires):
            log.warning(
                "schedule %s: %s%d fire times missed, starting the latest %d only "
                "(STUDIOX_SCHEDULE_CATCH_UP_MAX)",
                schedule,
                at_least,
                due.total,
                len(fires),
            )
    else:
        grace = timedelta(seconds=settings.STUDIOX_SCHEDULE_GRACE_SECONDS)
        fires = [(fire_time, 0) for fire_time in due.latest if now - fire_time <= grace]
    skipped = due.total - len(fires)
    if skipped:
        log.warning("schedule %s: %s%d missed fire time(s) skipped", schedule, at_least, skipped)
    return fires, skipped


STARTED, FAILED, TAKEN = "started", "failed", "taken"


def _fire(schedule: Schedule, fire_time: datetime, *, missed: int) -> str:
    """Start the mission of one fire time unless another scheduler did."""
    try:
        with transaction.atomic():  # a savepoint: losing the race costs only this fire time
            fire = ScheduleFire.objects.create(
                schedule=schedule, fire_time=fire_time, missed=missed
            )
    except IntegrityError:
        return TAKEN
    try:
        with transaction.atomic():
            started = mission_start(
                type=schedule.mission_type,
                input=schedule.input,
                started_by=schedule.run_as,
                idempotency_key=f"schedule:{schedule.pk}:{fire_time.isoformat()}",
            )
    except MissionError as exc:
        # The mission's code changed under the schedule: the fire time is spent, and says why.
        details = exc.errors if isinstance(exc, MissionInputError) else {}
        fire.error = "; ".join([str(exc), *(f"{k}: {' '.join(v)}" for k, v in details.items())])
        fire.save(update_fields=["error"])
        log.warning("schedule %s at %s started no mission: %s", schedule, fire_time, fire.error)
        return FAILED
    fire.mission = started.mission
    fire.save(update_fields=["mission"])
    return STARTED
