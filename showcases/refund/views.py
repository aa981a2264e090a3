"""The web form that starts a customer refund (the demo's first step)."""

import secrets
from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from knowledge.selectors import knowledge_record
from missions.services import IdempotencyKeyReused, MissionInputError, mission_start
from showcases.refund.payments import order_on_record

REFUND_TYPE = "customer_refund"
FIELDS = ("order_id", "amount", "reason")
MAX_KEY_LENGTH = 200
MAX_ORDER_ID_LENGTH = 50  # RefundRequest.order_id's limit; longer ones get its field error


@login_required
@require_http_methods(["GET", "POST"])
def refund_new(request: HttpRequest) -> HttpResponse:
    values = dict.fromkeys(FIELDS, "")
    errors: dict[str, list[str]] = {}
    conflict = None
    if request.method == "POST":
        values = {key: request.POST.get(key, "").strip() for key in FIELDS}
        # An order no record knows is refused here, before any mission starts.
        errors = _unknown_order(values["order_id"])
    if request.method == "POST" and not errors:
        try:
            started = mission_start(
                type=REFUND_TYPE,
                input=_as_input(values),
                started_by=request.user,
                # Back, edit, submit again carries the same key: the service then answers
                # with the first mission, or refuses if the details changed.
                idempotency_key=request.POST.get("idempotency_key", "")[:MAX_KEY_LENGTH],
            )
        except MissionInputError as exc:
            errors = exc.errors
        except IdempotencyKeyReused as exc:
            conflict = exc.mission
        else:
            return redirect("missions:detail", mission_id=started.mission.id)
    context = {
        "values": values,
        "errors": errors,
        "conflict": conflict,
        "conflict_url": reverse("missions:detail", args=[conflict.id]) if conflict else "",
        # A fresh key per rendered form: two tabs never share one, and after a refusal the
        # next submission is a new request.
        "idempotency_key": secrets.token_urlsafe(24),
    }
    status = 409 if conflict else 400 if errors else 200
    return render(request, "refunds/new.html", context, status=status)


def _unknown_order(order_id: str) -> dict[str, list[str]]:
    """A field error for an order no record knows; a blank, over-long or NUL-bearing id is
    left to the mission's input validation, which says what is wrong with it."""
    if not order_id or len(order_id) > MAX_ORDER_ID_LENGTH or "\x00" in order_id:
        return {}
    if order_on_record(order_id):
        return {}
    return {"order_id": [f"No order {order_id} on record"]}


def _as_input(values: dict[str, str]) -> dict:
    try:
        amount: Decimal | str = Decimal(values["amount"])
    except InvalidOperation:
        amount = values["amount"]  # pydantic reports it as a field error
    return {**values, "amount": amount, "customer_id": _customer_of(values["order_id"])}


def _customer_of(order_id: str) -> str:
    """The order's customer, so the refund is found by customer too (missions.search)."""
    if not order_id or len(order_id) > MAX_ORDER_ID_LENGTH:
        return ""
    order = knowledge_record("order", order_id) or {}
    return str(order.get("customer_id") or "")
