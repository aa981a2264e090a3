"""Reads about schedules: what fires next, and what the last fires started."""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery, UUIDField
from django.utils import timezone

from schedules.cron import next_fire_times
from schedules.models import Schedule, ScheduleFire


def schedule_upcoming(schedule: Schedule, *, count: int = 5, now: datetime | None = None):
    """The next `count` fire times (UTC): from where the scheduler stands, or from now for
    a schedule that is off."""
    after = schedule.handled_until if schedule.enabled else None
    after = after or now or timezone.now()
    return next_fire_times(schedule.cron, schedule.timezone, after=after, count=count)


def schedule_recent_fires(schedule: Schedule, *, limit: int = 10) -> QuerySet[ScheduleFire]:
    return schedule.fires.select_related("mission").order_by("-fire_time")[:limit]


def schedules_with_last_fire() -> QuerySet[Schedule]:
    """Every schedule with its last fire's time, mission and that mission's status, in one
    query (the admin list)."""
    last = ScheduleFire.objects.filter(schedule=OuterRef("pk")).order_by("-fire_time")
    return Schedule.objects.annotate(
        last_fire_at=Subquery(last.values("fire_time")[:1]),
        last_mission_id=Subquery(last.values("mission_id")[:1], output_field=UUIDField()),
        last_mission_status=Subquery(last.values("mission__status")[:1]),
    )
