"""Fire times of a cron expression in a time zone: pure computation, no database.

Fire times are computed in the schedule's zone and returned in UTC. Across a DST change a
wall-clock time that does not exist (spring forward) fires at the first instant after the
gap; one that happens twice (fall back) fires once when the hour field names hours (a
nightly batch at 02:30 runs once) and at both instants when it is `*` (every 30 minutes
stays every 30 minutes of elapsed time), as cron does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# Counting missed fire times costs a cron step each (about 0.4 ms): past this many, the count
# is reported as "at least" rather than holding the scheduler for seconds.
COUNT_LIMIT = 1000
_TICK = timedelta(microseconds=1)


def _repeated(moment: datetime) -> bool:
    """The second occurrence of a wall-clock time that the fall-back hour repeats."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


def _hours_named(expression: str) -> bool:
    return croniter(expression).expanded[1] != ["*"]


def _walk(expression: str, zone: str, start: datetime, *, forward: bool) -> Iterator[datetime]:
    cron = croniter(expression, start.astimezone(ZoneInfo(zone)))
    skip_repeats = _hours_named(expression)
    step = cron.get_next if forward else cron.get_prev
    while True:
        moment = step(datetime)
        if not (skip_repeats and _repeated(moment)):
            yield moment.astimezone(UTC)


def next_fire_times(expression: str, zone: str, *, after: datetime, count: int) -> list[datetime]:
    """The first `count` fire times strictly after `after`, in UTC."""
    walk = _walk(expression, zone, after, forward=True)
    return [next(walk) for _ in range(count)]


def next_fire_time(expression: str, zone: str, *, after: datetime) -> datetime:
    return next_fire_times(expression, zone, after=after, count=1)[0]


@dataclass(frozen=True)
class Due:
    """The fire times in (after, until]: the newest `latest` (oldest first) and how many in
    all (`total`; a lower bound when `counted_all` is False)."""

    latest: list[datetime]
    total: int
    counted_all: bool = True


def due_fire_times(
    expression: str, zone: str, *, after: datetime, until: datetime, keep: int
) -> Due:
    """The fire times after `after` up to and including `until`, newest `keep` of them."""
    latest: list[datetime] = []
    # Backwards from `until` (inclusive): the newest are what any catch-up policy fires.
    for moment in _walk(expression, zone, until + _TICK, forward=False):
        if moment <= after or len(latest) == keep:
            break
        latest.append(moment)
    latest.reverse()
    if len(latest) < keep:
        return Due(latest=latest, total=len(latest))
    for counted, moment in enumerate(_walk(expression, zone, after, forward=True)):
        if moment > until:
            return Due(latest=latest, total=counted)
        if counted + 1 == COUNT_LIMIT:
            return Due(latest=latest, total=COUNT_LIMIT, counted_all=False)
    raise AssertionError("unreachable: a cron walk never ends")  # pragma: no cover
