"""The web form that starts a customer refund (the demo's first step)."""

from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from missions.services import MissionInputError, mission_start

REFUND_TYPE = "customer_refund"


@login_required
@require_http_methods(["GET", "POST"])
def refund_new(request: HttpRequest) -> HttpResponse:
    values = {"order_id": "", "amount": "", "reason": ""}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {key: request.POST.get(key, "").strip() for key in values}
        try:
            started = mission_start(
                type=REFUND_TYPE,
                input=_as_input(values),
                started_by=request.user,
                idempotency_key=request.POST.get("idempotency_key", "")[:200],
            )
        except MissionInputError as exc:
            errors = exc.errors
        else:
            return redirect("missions:detail", mission_id=started.mission.id)
    status = 400 if errors else 200
    return render(request, "refunds/new.html", {"values": values, "errors": errors}, status=status)


def _as_input(values: dict[str, str]) -> dict:
    try:
        amount: Decimal | str = Decimal(values["amount"])
    except InvalidOperation:
        amount = values["amount"]  # pydantic reports it as a field error
    return {**values, "amount": amount}
