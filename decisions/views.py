"""The web Decision Queue: three views, a detail page, and HTMX decide/claim/release."""

from __future__ import annotations

import hashlib
import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from decisions import services
from decisions.evidence import decision_evidence
from decisions.models import Decision
from decisions.selectors import decision_counts, decision_get_for, decision_queue_pages
from observations.models import Observation

VIEWS = {"queue": "My queue", "claimed": "Claimed by me", "archive": "Archive"}
PAGE_SIZE = 20


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    view = request.GET.get("view", "queue")
    view = view if view in VIEWS else "queue"
    filters = {
        "role": request.GET.get("role", ""),
        "status": request.GET.get("status", "") if view == "archive" else "",
        "overdue": request.GET.get("overdue") == "1",
        "sort": request.GET.get("sort", "due"),
    }
    decisions = decision_queue_pages(
        user=request.user,
        view=view,
        **{k: v or None for k, v in filters.items() if k != "sort"},
        sort=filters["sort"],
    )
    counts = decision_counts(user=request.user)
    paginator = Paginator(decisions, PAGE_SIZE)
    if view in counts and not (filters["role"] or filters["overdue"]):
        # The tab's count is this list's count: one COUNT over a long queue, not two.
        paginator.count = counts[view]
    page = paginator.get_page(request.GET.get("page"))
    signature = _signature(page, counts)
    if request.htmx and request.GET.get("known") == signature:
        # A poll or a hint that changed nothing: htmx swaps nothing on 204, so focus, scroll
        # and the screen reader's live region stay as they are.
        return HttpResponse(status=204)
    context = {
        "views": VIEWS,
        "view": view,
        "view_label": VIEWS[view],
        "filters": filters,
        "page": page,
        "signature": signature,
        "summary": _summary(page, VIEWS[view]),
        "roles": request.user.groups.order_by("name").values_list("name", flat=True),
        "counts": counts,
        "statuses": Decision.Status.choices,
    }
    template = "decisions/queue.html#queue" if request.htmx else "decisions/queue.html"
    return render(request, template, context)


def _summary(page: Page, label: str) -> str:
    count = page.paginator.count
    overdue = sum(d.is_overdue for d in page.object_list)
    text = f"{count} decision{pluralize(count)} in {label}"
    return text + (f", {overdue} overdue on this page." if overdue else ".")


def _signature(page: Page, counts: dict[str, int]) -> str:
    """What the list shows; the minute is in it because "waiting since" ages."""
    rows = [(d.id, d.status, d.claimed_by_id, d.is_overdue) for d in page.object_list]
    shown = [rows, counts, page.number, page.paginator.count, f"{timezone.now():%Y%m%d%H%M}"]
    return hashlib.blake2s(json.dumps(shown).encode(), digest_size=8).hexdigest()


def _decision_or_404(request: HttpRequest, decision_id: int) -> Decision:
    decision = decision_get_for(user=request.user, decision_id=decision_id)
    if decision is None:
        raise Http404("No such decision")
    return decision


@login_required
@require_GET
def detail(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = _decision_or_404(request, decision_id)
    if request.htmx and "seen" in request.GET:
        # The open page asks whether the decision changed under it (detail.js): nothing to
        # swap if not, else the answer fragment with a note saying so.
        if request.GET["seen"] == decision.live_state:
            return HttpResponse(status=204)
        note = "This decision changed while you had it open."
        context = _detail_context(request, decision, oob=True, live_note=note)
        return render(request, "decisions/detail.html#answer", context)
    return render(request, "decisions/detail.html", _detail_context(request, decision))


def _detail_context(request: HttpRequest, decision: Decision, **extra) -> dict:
    try:
        services.decision_check_allowed(decision=decision, user=request.user)
        services.decision_check_claim(decision=decision, user=request.user)
        may_decide, why_not = True, ""
    except services.DecisionNotAllowed as exc:
        may_decide, why_not = False, str(exc)
    observations = Observation.objects.filter(mission_id=decision.mission_id).order_by("-id")[:50]
    user = request.user
    return {
        "decision": decision,
        "may_decide": may_decide and decision.is_pending,
        "may_release": decision.is_pending
        and decision.claimed_by_id is not None
        and (decision.claimed_by_id == user.id or user.has_perm("decisions.change_decision")),
        "why_not": why_not,
        "evidence": decision_evidence(decision.context),
        "observations": list(reversed(observations)),
        "audit": decision.audit.all(),
        **extra,
    }


@login_required
@require_POST
def decide(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = _decision_or_404(request, decision_id)
    outcome = request.POST.get("outcome", "")
    comment = request.POST.get("comment", "").strip()
    try:
        decision = services.decision_decide(
            decision=decision, user=request.user, outcome=outcome, comment=comment
        )
    except services.DecisionError as exc:
        return _answer(request, decision, error=str(exc), status=_status_for(exc))
    return _answer(
        request, decision, done=f"You {decision.outcome} this decision. The mission resumes now."
    )


@login_required
@require_POST
def claim(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = _decision_or_404(request, decision_id)
    action = request.POST.get("action", "claim")
    try:
        if action == "release":
            decision = services.decision_release(decision=decision, user=request.user)
            message = "Released: back in the queue for your colleagues."
        else:
            decision = services.decision_claim(decision=decision, user=request.user)
            message = "Claimed: your colleagues see that you are on it."
    except services.DecisionError as exc:
        return _answer(request, decision, error=str(exc), status=_status_for(exc))
    return _answer(request, decision, done=message)


def _status_for(exc: services.DecisionError) -> int:
    if isinstance(exc, services.DecisionAlreadyDecided):
        return 409
    if isinstance(exc, services.DecisionNotAllowed):
        return 403
    return 400


def _answer(
    request: HttpRequest, decision: Decision, *, status: int = 200, **message
) -> HttpResponse:
    decision.refresh_from_db()
    if request.htmx:
        context = _detail_context(request, decision, oob=True, **message)
        return render(request, "decisions/detail.html#answer", context, status=status)
    return render(
        request,
        "decisions/detail.html",
        _detail_context(request, decision, **message),
        status=status,
    )
