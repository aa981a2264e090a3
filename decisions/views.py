"""The web Decision Queue: three views, a detail page, and HTMX decide/claim/release."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from decisions import services
from decisions.evidence import decision_evidence
from decisions.export import (
    audit_export_header,
    audit_export_rows,
    decision_export_header,
    decision_export_rows,
)
from decisions.models import Decision
from decisions.selectors import (
    decision_counts,
    decision_get_for,
    decision_queue,
    decision_queue_pages,
    delegations_of,
    delegators_of,
)
from missions.search import SEARCH_MAX_LENGTH
from observations.models import Observation
from studiox.csv_export import csv_response

VIEWS = {"queue": "My queue", "claimed": "Claimed by me", "archive": "Archive"}
PAGE_SIZE = 20


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    view = request.GET.get("view", "queue")
    view = view if view in VIEWS else "queue"
    amounts, filter_errors = _amount_filters(request)
    filters = {
        "role": request.GET.get("role", ""),
        "status": request.GET.get("status", "") if view == "archive" else "",
        "overdue": request.GET.get("overdue") == "1",
        "sort": request.GET.get("sort", "due"),
        "search": request.GET.get("q", "").strip()[:SEARCH_MAX_LENGTH],
        "requester": request.GET.get("requester", "").strip()[:REQUESTER_MAX_LENGTH],
        **amounts,
    }
    if request.GET.get("format") == "csv":
        return _decisions_csv(request, view=view, filters=filters)
    decisions = decision_queue_pages(
        user=request.user,
        view=view,
        **{k: v or None for k, v in filters.items() if k != "sort"},
        sort=filters["sort"],
    )
    counts = decision_counts(user=request.user)
    paginator = Paginator(decisions, PAGE_SIZE)
    narrowed = any(filters[k] for k in ("role", "overdue", "search", "requester")) or any(
        filters[k] is not None for k in AMOUNT_FILTERS
    )
    if view in counts and not narrowed:
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
        "filter_input": {k: request.GET.get(k, "") for k in AMOUNT_FILTERS},
        "filter_errors": filter_errors,
        "standing_in_for": delegators_of(user=request.user),
        "bulk_limit": services.BULK_LIMIT,
    }
    template = "decisions/queue.html#queue" if request.htmx else "decisions/queue.html"
    # htmx swaps no 4xx answer, so the live list shows its message with a 200.
    status = 400 if filter_errors and not request.htmx else 200
    return render(request, template, context, status=status)


AMOUNT_FILTERS = {"amount_min": "Amount from", "amount_max": "Amount to"}
AMOUNT_LARGEST = Decimal("1e15")
REQUESTER_MAX_LENGTH = 150


def _amount_filters(request: HttpRequest) -> tuple[dict, list[str]]:
    """The amount range asked for, as Decimals (None: not asked or not a number), and what
    was wrong with it, in words."""
    amounts, errors = {}, []
    for key, label in AMOUNT_FILTERS.items():
        text = request.GET.get(key, "").strip().replace(",", ".")
        amounts[key] = None
        if not text:
            continue
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or abs(amount) >= AMOUNT_LARGEST:
            errors.append(f"{label}: enter a number such as 250.00.")
        else:
            amounts[key] = amount
    low, high = amounts["amount_min"], amounts["amount_max"]
    if low is not None and high is not None and low > high:
        errors.append("Amount from is above Amount to: nothing can match.")
    return amounts, errors


def _decisions_csv(request: HttpRequest, *, view: str, filters: dict) -> StreamingHttpResponse:
    """The view's filtered list, every page of it, in the page's order."""
    decisions = decision_queue(
        user=request.user,
        view=view,
        **{k: v or None for k, v in filters.items() if k != "sort"},
        sort=filters["sort"],
    )
    return csv_response(
        filename=f"decisions-{view}-{timezone.now():%Y%m%d-%H%M%S}.csv",
        header=decision_export_header(),
        rows=decision_export_rows(decisions),
    )


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
    on_behalf_of = None
    try:
        on_behalf_of = services.decision_check_allowed(decision=decision, user=request.user)
        services.decision_check_claim(decision=decision, user=request.user)
        may_decide, why_not = True, ""
    except services.DecisionNotAllowed as exc:
        may_decide, why_not = False, str(exc)
    rail = Observation.objects.filter(mission_id=decision.mission_id).business()
    observations = rail.order_by("-id")[:50]
    user = request.user
    return {
        "decision": decision,
        "may_decide": may_decide and decision.is_pending,
        "may_release": decision.is_pending
        and decision.claimed_by_id is not None
        and (decision.claimed_by_id == user.id or user.has_perm("decisions.change_decision")),
        "why_not": why_not,
        "on_behalf_of": on_behalf_of,
        "evidence": decision_evidence(decision.context),
        "observations": list(reversed(observations)),
        "audit": decision.audit.all(),
        **extra,
    }


@login_required
@require_GET
def audit_csv(request: HttpRequest, decision_id: int) -> StreamingHttpResponse:
    """A decision's audit trail as CSV, for whoever may see the decision."""
    decision = _decision_or_404(request, decision_id)
    return csv_response(
        filename=f"decision-{decision.id}-audit.csv",
        header=audit_export_header(),
        rows=audit_export_rows(decision.audit.select_related("decision")),
    )


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


@require_GET
def pending_count(request: HttpRequest) -> HttpResponse:
    """The top bar's badge, re-fetched on a live hint (static/decisions/pending-count.js)."""
    if not request.user.is_authenticated:
        # Not the login redirect: htmx would swap the login page into the top bar.
        return HttpResponse("Log in to see your pending decisions.", status=401)
    return render(request, "decisions/pending_badge.html")


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


@login_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """Approve or reject the selected decisions with one comment; the page lists each one's
    result (decided, or refused and why)."""
    outcome = request.POST.get("outcome", "")
    try:
        results = services.decisions_decide_many(
            decision_ids=request.POST.getlist("decision"),
            user=request.user,
            outcome=outcome,
            comment=request.POST.get("comment", "").strip(),
        )
    except services.DecisionError as exc:
        status = 413 if isinstance(exc, services.DecisionBulkTooLarge) else 400
        return render(request, "decisions/bulk.html", {"error": str(exc)}, status=status)
    decided = sum(result.decided for result in results)
    context = {
        "results": results,
        "outcome": outcome,
        "headline": f"{decided} decided, {len(results) - decided} refused",
    }
    return render(request, "decisions/bulk.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def delegations(request: HttpRequest) -> HttpResponse:
    """Delegation while away: name a delegate for a period, see and revoke delegations."""
    if request.method == "POST":
        try:
            services.delegation_give(
                user=request.user,
                delegate_username=request.POST.get("delegate", ""),
                starts_at=_utc_input(request.POST.get("starts_at", ""), label="From")
                or timezone.now(),
                ends_at=_utc_input(request.POST.get("ends_at", ""), label="Until", required=True),
                reason=request.POST.get("reason", "").strip(),
            )
        except services.DecisionError as exc:
            return _delegations_page(request, error=str(exc), status=_status_for(exc))
        messages.success(request, "Delegation saved: your delegate may decide for you then.")
        return redirect("decisions:delegations")
    return _delegations_page(request)


@login_required
@require_POST
def delegation_revoke(request: HttpRequest, delegation_id: int) -> HttpResponse:
    try:
        services.delegation_revoke(delegation_id=delegation_id, user=request.user)
    except services.DecisionError as exc:
        status = 409 if isinstance(exc, services.DelegationInvalid) else 403
        return _delegations_page(request, error=str(exc), status=status)
    messages.success(request, "Delegation revoked.")
    return redirect("decisions:delegations")


def _delegations_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "delegations": delegations_of(user=request.user),
        "error": error,
        "form": request.POST if error else {},
        "now": timezone.now(),
    }
    return render(request, "decisions/delegations.html", context, status=status)


def _utc_input(text: str, *, label: str, required: bool = False) -> datetime | None:
    """A date and time from the page's datetime-local field, read as UTC (as shown)."""
    text = text.strip()
    if not text:
        if required:
            raise services.DelegationInvalid(f"{label}: enter a date and time.")
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise services.DelegationInvalid(
            f"{label}: enter a date and time such as 2026-12-24 18:00."
        ) from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
