"""Mission pages: the list, one mission's page, and the operator buttons. Thin callers of
missions.selectors and missions.services; permissions come from the selectors."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from missions import selectors, services
from missions.models import Mission
from missions.runtime import get_definition
from missions.search import mission_export_header, mission_export_rows
from observations import selectors as observation_selectors
from observations.timeline import mission_timeline
from studiox.csv_export import csv_response

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
STEPS_SHOWN = 500
OBSERVATIONS_SHOWN = 200
ACTIVE = (Mission.Status.PENDING, Mission.Status.RUNNING, Mission.Status.WAITING)


@login_required
@require_GET
def mission_list(request: HttpRequest) -> HttpResponse:
    statuses = dict(Mission.Status.choices)
    filters = {
        "status": request.GET.get("status", "") if request.GET.get("status") in statuses else "",
        "type": request.GET.get("type", "")[:100],
        "q": request.GET.get("q", "").strip()[:100],
        "parent": _uuid_or_blank(request.GET.get("parent", "")),
    }
    missions = selectors.mission_list(
        user=request.user,
        status=filters["status"] or None,
        type=filters["type"] or None,
        search=filters["q"] or None,
        parent=filters["parent"] or None,
    )
    if request.GET.get("format") == "csv":
        return _missions_csv(missions)
    page = Paginator(missions, PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {key: value for key, value in filters.items() if value}
    context = {
        "page": page,
        "filters": filters,
        "statuses": Mission.Status.choices,
        "types": selectors.mission_types(),
        "querystring": urlencode(kept) + "&" if kept else "",
        "csv_querystring": urlencode({**kept, "format": "csv"}),
    }
    template = "missions/mission_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#table"
    return render(request, template, context)


def _missions_csv(missions) -> StreamingHttpResponse:
    """The filtered list, every page of it; children are not listed, so not prefetched."""
    rows = missions.prefetch_related(None).iterator(chunk_size=500)
    return csv_response(
        filename=f"missions-{timezone.now():%Y%m%d-%H%M%S}.csv",
        header=mission_export_header(),
        rows=mission_export_rows(rows),
    )


@login_required
@require_GET
def mission_detail(request: HttpRequest, mission_id) -> HttpResponse:
    mission = _visible_or_404(request, mission_id)
    context = _live_context(request, mission)
    if request.htmx or request.GET.get("partial") == "live":
        return render(request, "missions/mission_detail.html#live", context)
    # The cursor comes first: a line committed meanwhile arrives twice at most, never not.
    # The rail covers the missions this one started, and theirs, each line labelled.
    covered = observation_selectors.mission_rail_labels(user=request.user, mission=mission)
    scope = observation_selectors.observations_of_missions(mission_ids=covered)
    last_seq = scope.order_by("-id").values_list("id", flat=True).first() or 0
    technical = observation_selectors.wants_technical_view(request.GET.get("view"))
    shown = scope if technical else observation_selectors.business_lines(scope)
    context |= {
        "last_seq": last_seq,
        "observations": observation_selectors.observations_latest(
            scope=shown, limit=OBSERVATIONS_SHOWN
        ),
        "observations_shown": OBSERVATIONS_SHOWN,
        "technical_view": technical,
    }
    return render(request, "missions/mission_detail.html", context)


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    allowed_from: tuple[str, ...]
    style: str = "secondary"
    confirm: str = ""


OPERATIONS = {
    "pause": Operation("pause", "Pause", ACTIVE),
    "resume": Operation("resume", "Resume", (Mission.Status.PAUSED,)),
    "retry": Operation("retry", "Retry from the failed step", (Mission.Status.FAILED,), "primary"),
    "cancel": Operation(
        "cancel",
        "Cancel mission",
        (*ACTIVE, Mission.Status.PAUSED),
        "danger",
        "Cancel this mission? Its pending decisions are withdrawn.",
    ),
}


@login_required
@require_POST
def mission_operate(request: HttpRequest, mission_id, action: str) -> HttpResponse:
    """Cancel, pause, resume or retry; a refusal (say, already finished) is a message."""
    operation = OPERATIONS.get(action)
    if operation is None:
        raise Http404("no such operation")
    mission = _visible_or_404(request, mission_id)
    if not _may(request.user, mission, action):
        raise PermissionDenied("you may not do this to this mission")
    try:
        _run(action, mission=mission, by=request.user, reason=request.POST.get("reason", ""))
    except services.MissionError as exc:
        messages.error(request, f"Could not {action} the mission: {exc}")
    except Exception:  # an operator button must never end in a 500 page
        logger.exception("operator %s of mission %s failed", action, mission.id)
        messages.error(request, f"Could not {action} the mission: an internal error was logged.")
    else:
        messages.success(request, _done_message(action))
    return redirect(reverse("missions:detail", args=[mission.id]))


def _run(action: str, *, mission: Mission, by, reason: str) -> None:
    if action == "cancel":
        services.mission_cancel(mission=mission, by=by, reason=reason.strip()[:200])
    elif action == "pause":
        services.mission_pause(mission=mission, by=by)
    elif action == "resume":
        services.mission_resume(mission=mission, by=by)
    elif action == "retry":
        services.mission_retry(mission=mission, by=by)


def _done_message(action: str) -> str:
    return {
        "cancel": "Mission cancelled; its pending decisions were withdrawn.",
        "pause": "Mission paused.",
        "resume": "Mission resumed.",
        "retry": "Mission retried from its failed step.",
    }[action]


def _may(user, mission: Mission, action: str) -> bool:
    if action == "cancel":
        return selectors.mission_can_cancel(user=user, mission=mission)
    return selectors.mission_can_operate(user=user, mission=mission)


def _uuid_or_blank(value: str) -> str:
    """A mission id from a query string, or "" for anything else (the filter is dropped)."""
    try:
        return str(uuid.UUID(value.strip()[:40]))
    except ValueError:
        return ""


def _visible_or_404(request: HttpRequest, mission_id) -> Mission:
    mission = selectors.mission_get_for(user=request.user, mission_id=mission_id)
    if mission is None:
        raise Http404("no such mission")
    return mission


def _live_context(request: HttpRequest, mission: Mission) -> dict:
    """What the refreshed part of the page shows: state, buttons, decisions, timeline."""
    now = timezone.now()
    steps = selectors.mission_steps(mission=mission)
    total = mission.step_count
    shown = list(steps.filter(position__gte=max(total - STEPS_SHOWN, 0))[: STEPS_SHOWN + 10])
    definition = get_definition(mission.type)
    retention = timedelta(days=settings.STUDIOX_RETENTION_DAYS)
    return {
        "mission": mission,
        "definition_title": definition.title if definition else "",
        "elapsed": (mission.finished_at - mission.created_at) if mission.finished_at else None,
        "timeline": mission_timeline(mission=mission, steps=shown, now=now),
        "tree": selectors.mission_tree(user=request.user, mission=mission),
        "map_steps": selectors.map_progress(mission=mission),
        "parent": _visible_parent(request, mission),
        "steps_hidden": shown[0].position if shown and shown[0].position > 0 else 0,
        "purged": bool(mission.finished_at and mission.finished_at < now - retention),
        "retention_days": settings.STUDIOX_RETENTION_DAYS,
        "decisions": _pending_decisions(mission),
        "actions": [
            operation
            for name, operation in OPERATIONS.items()
            if mission.status in operation.allowed_from and _may(request.user, mission, name)
        ],
    }


def _visible_parent(request: HttpRequest, mission: Mission) -> Mission | None:
    if mission.parent_id is None:
        return None
    return selectors.mission_get_for(user=request.user, mission_id=mission.parent_id)


@dataclass(frozen=True)
class PendingDecision:
    title: str
    role: str
    due_at: object
    overdue: bool
    url: str


def _pending_decisions(mission: Mission) -> list[PendingDecision]:
    # Through the reverse relation, so reading a mission's decisions needs no import of the
    # decisions app: missions reach its code only through decisions.waits (tests/test_seams.py).
    rows = mission.decisions.filter(status="pending").select_related("role").order_by("pk")[:50]
    return [
        PendingDecision(
            title=decision.title or str(decision),
            role=decision.role.name,
            due_at=decision.due_at,
            overdue=decision.is_overdue,
            url=reverse("decisions:detail", args=[decision.pk]),
        )
        for decision in rows
    ]
