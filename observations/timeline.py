"""A mission's steps as a Gantt chart: where the time went, work and waits told apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from missions.models import Mission, Step

WAIT_KINDS = (Step.Kind.SLEEP, Step.Kind.DECISION, Step.Kind.EVENT)
MIN_BAR_PERCENT = 0.4  # an instant step still shows as a sliver


@dataclass(frozen=True)
class Bar:
    step: Step
    left: float  # percent of the chart from its start
    width: float  # percent of the chart
    seconds: float
    is_wait: bool
    is_open: bool  # still running or waiting


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    starts_at: datetime
    ends_at: datetime
    seconds: float


def mission_timeline(*, mission: Mission, steps: Sequence[Step], now: datetime) -> Timeline:
    """Bars for `steps`, placed between the mission's start and its end (or `now`)."""
    starts_at = min([mission.created_at, *(s.started_at for s in steps)])
    ends_at = mission.finished_at or now
    ends_at = max([ends_at, *(s.finished_at for s in steps if s.finished_at)])
    span = max((ends_at - starts_at).total_seconds(), 0.001)
    bars = []
    for step in steps:
        is_open = step.finished_at is None and not mission.is_final
        finished = step.finished_at or ends_at
        seconds = max((finished - step.started_at).total_seconds(), 0.0)
        left = min((step.started_at - starts_at).total_seconds() / span * 100, 100.0)
        width = max(seconds / span * 100, MIN_BAR_PERCENT)
        left = round(min(left, 100 - MIN_BAR_PERCENT), 2)
        width = round(min(width, 100 - left), 2)
        is_wait = step.kind in WAIT_KINDS
        bars.append(Bar(step, left, width, seconds, is_wait, is_open))
    return Timeline(bars=bars, starts_at=starts_at, ends_at=ends_at, seconds=span)
