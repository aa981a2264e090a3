"""What a list shows of a mission's declared business keys and amount (missions.search)."""

from __future__ import annotations

from django import template

from missions.models import Mission
from missions.search import BusinessKey, MissionAmount, mission_amount, mission_business_keys

register = template.Library()


@register.filter
def business_keys(mission: Mission) -> list[BusinessKey]:
    return mission_business_keys(mission)


@register.filter
def amount(mission: Mission) -> MissionAmount | None:
    return mission_amount(mission)
