"""Pending decisions for the Decision Queue tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.utils import timezone

from decisions.models import Decision
from decisions.waits import decision_open
from missions.models import Mission


def open_decision(
    requester,
    title: str = "Approve",
    *,
    step: str = "approval",
    role: str = "supervisor",
    due_in: timedelta | None = None,
    summary: str = "",
    context: dict | None = None,
    options: Sequence[str] = ("approved", "rejected"),
) -> Decision:
    """A pending decision on a bare mission row: no worker is needed to open a decision,
    and none is enqueued."""
    mission = Mission.objects.create(type="test_approval", version=1, started_by=requester)
    return decision_open(
        mission=mission,
        step_name=step,
        role=role,
        title=title,
        summary=summary,
        context=context or {},
        options=list(options),
        due_at=timezone.now() + due_in if due_in is not None else None,
    )
