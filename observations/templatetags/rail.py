"""Display helpers for mission and rail pages: durations in words, short ids, JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

register = template.Library()

JSON_DISPLAY_LIMIT = 4000


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
def pretty_json(value) -> str:
    """Indented JSON, cut at a length a page can show (the admin shows everything)."""
    text = json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)
    if len(text) > JSON_DISPLAY_LIMIT:
        return text[:JSON_DISPLAY_LIMIT] + f"\n… ({len(text) - JSON_DISPLAY_LIMIT} more characters)"
    return text


@register.filter
def waiting_label(mission) -> str:
    """What a mission waits on, in one phrase: "Timer 'cool_down'", "Decision: Refund 40"."""
    if not mission.waiting_on:
        return ""
    label = mission.get_waiting_on_display()
    detail = (mission.waiting_detail or "").strip()
    if not detail:
        return label
    if detail.lower().startswith(label.lower()):
        return detail[:1].upper() + detail[1:]
    return f"{label}: {detail}"
