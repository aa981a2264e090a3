"""Display helpers for mission and rail pages: durations in words, short ids, JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from missions.models import Mission
from missions.selectors import mission_queue_label

register = template.Library()

JSON_DISPLAY_LIMIT = 4000
FULL_JSON_DISPLAY_LIMIT = 200_000


@register.filter
def duration(value: float | timedelta | None) -> str:
    """Seconds (or a timedelta) in words an operator reads at a glance: 850 ms, 4.2 s,
    3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


@register.filter
def waited(since: datetime | None) -> str:
    """How long since `since`, in words (the rail's "waiting for")."""
    if since is None:
        return ""
    return duration(timezone.now() - since)


@register.filter
def short_id(value) -> str:
    return str(value)[:8]


@register.filter
def pretty_json(value, size: str = "") -> str:
    """Indented JSON, cut at a length a page can show (the admin shows everything);
    `pretty_json:"full"` keeps far more (a verdict, which people read in full)."""
    text = json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)
    limit = FULL_JSON_DISPLAY_LIMIT if size == "full" else JSON_DISPLAY_LIMIT
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return text


@register.filter
def waiting_label(mission) -> str:
    """What a mission waits on, in one phrase: "Timer 'cool_down'", "Decision: Refund 40"."""
    if not mission.waiting_on:
        return ""
    if mission.waiting_on == Mission.WaitingOn.QUEUED:
        # "Queued (3rd of 12) for a slot of Refund (5 at once)": the place is read now.
        queued = mission_queue_label(mission=mission)
        if queued:
            return queued
    label = mission.get_waiting_on_display()
    detail = (mission.waiting_detail or "").strip()
    if not detail:
        return label
    if (
        detail.lower().startswith(label.lower())
        or mission.waiting_on == Mission.WaitingOn.RATE_LIMIT
    ):
        # "The payments API's rate limit (issue_refund, 10/s), next slot 14:02:31 UTC"
        return detail[:1].upper() + detail[1:]
    return f"{label}: {detail}"


# A mission's business answer, one colour per meaning: what people look at first.
GOOD_OUTCOMES = frozenset(
    {"approved", "refunded", "reconciled", "matched", "adjusted", "paid", "completed", "done"}
)
BAD_OUTCOMES = frozenset({"rejected", "refused", "denied", "declined", "cancelled", "failed"})
WARN_OUTCOMES = frozenset({"not_refunded", "incomplete", "discrepancy", "expired", "timed_out"})


@register.filter
def outcome_tone(outcome: str | None) -> str:
    """good (green), bad (red), warn (amber) or neutral: the outcome badge's colour class."""
    value = (outcome or "").strip().lower()
    if value in GOOD_OUTCOMES:
        return "good"
    if value in BAD_OUTCOMES or value.startswith(("rejected", "refused", "denied", "declined")):
        return "bad"
    if value in WARN_OUTCOMES or value.startswith("not_"):
        return "warn"
    return "neutral"


@register.filter
def outcome_label(outcome: str | None) -> str:
    """rejected_by_policy -> "Rejected by policy"."""
    text = " ".join((outcome or "").replace("_", " ").split())
    return text[:1].upper() + text[1:]
