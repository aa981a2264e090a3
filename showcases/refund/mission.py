"""The customer refund: the showcase mission (docs/authoring.md).

Knowledge lookup, what the order paid and its refunds read from the payments system of
record (payments.py), a policy check grounded in the refund policy's passages, supervisor
approval, finance sign-off above the threshold (on a fresh read), a cooling-off timer, a last
read and the refund through the payments MCP tool, and a verdict: `not_refunded` when a refund
paid meanwhile leaves too little. Every step is checkpointed: a crash anywhere resumes here
without paying twice (the payment tool dedupes by the step's idempotency key).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from pydantic import BaseModel, Field

from knowledge.services import knowledge_record, knowledge_search
from missions.runtime import NonRetryableError, Verdict, mission
from showcases.refund import payments as payments_system

CENTS = Decimal("0.01")
CURRENCY = "EUR"  # the demo shop's only currency


class RefundRequest(BaseModel):
    order_id: str = Field(
        min_length=1, max_length=50, description="the order to refund, e.g. A-1001"
    )
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2, description="amount in EUR")
    reason: str = Field(min_length=3, max_length=500, description="the customer's reason")
    customer_id: str = Field(
        default="",
        max_length=50,
        description="the order's customer, e.g. C-504 (the refund form fills it in), to find "
        "the customer's refunds by",
    )


def policy_passages(reason: str) -> list[dict]:
    """The refund policy's passages that bear on this request, with citations."""
    seen: dict[str, dict] = {}
    for query in (
        "refund time window days delivery",
        "finance threshold sign-off",
        "exclusions final sale gift card",
        "restocking fee opened",
        reason,
    ):
        for hit in knowledge_search(query=query, limit=2, kind="policy"):
            seen.setdefault(hit.citation, {"citation": hit.citation, "text": hit.text[:600]})
    return list(seen.values())


def assess_refund(order: dict, figures: dict | None, request: dict, today: str) -> dict:
    """Check the request against the refund policy; the reasons cite the policy's rules.
    `figures` is what the order paid and what was refunded, as the payments system answered
    (`lookup_refunds`); the money reasons name that source."""
    amount = Decimal(request["amount"])
    problems: list[str] = []
    paid = Decimal(figures["paid"]) if figures else Decimal("0")
    refunded = Decimal(figures["refunded"]) if figures else Decimal("0")
    source = payments_system.read_source(figures) if figures else ""
    findings: list[str] = []
    window = int(settings.STUDIOX_REFUND_WINDOW_DAYS)
    delivered = order.get("delivered_at")
    if delivered:
        age = (date.fromisoformat(today) - date.fromisoformat(str(delivered)[:10])).days
        if age > window:
            problems.append(f"delivered {age} days ago, outside the {window}-day refund window")
        else:
            findings.append(
                f"Delivered {age} days ago, within the {window}-day window (§ Time window)."
            )
    excluded = [
        item.get("name", item.get("sku", "item"))
        for item in order.get("items", [])
        if item.get("final_sale") or item.get("category") in ("gift_card", "gift card")
    ]
    if excluded:
        problems.append(f"excluded from refunds: {', '.join(excluded)}")
    if figures is None:
        problems.append("no payment found for this order")
    elif refunded >= paid:
        problems.append(f"already refunded in full ({refunded} of {paid}, from {source})")
    elif amount > paid - refunded:
        problems.append(
            f"asks {amount} but only {paid - refunded} of the {paid} paid is refundable "
            f"({refunded} refunded so far, from {source})"
        )
    fee_rate = Decimal(str(settings.STUDIOX_RESTOCKING_FEE_RATE))
    opened_electronics = any(
        item.get("category") == "electronics" and item.get("opened")
        for item in order.get("items", [])
    )
    fee = (amount * fee_rate).quantize(CENTS) if opened_electronics else Decimal("0.00")
    threshold = Decimal(str(settings.STUDIOX_FINANCE_THRESHOLD))
    if figures is not None and not problems:
        findings.append(
            f"Paid {paid} EUR, {refunded} EUR refunded so far, from {source} "
            "(§ Already refunded orders)."
        )
    findings.append(
        f"Restocking fee {fee} EUR (opened electronics)."
        if fee
        else "No restocking fee applies (§ Restocking fees)."
    )
    findings.append(
        f"Above {threshold} EUR: supervisor approval and finance sign-off (§ Thresholds)."
        if amount > threshold
        else f"Up to {threshold} EUR: supervisor approval only (§ Thresholds)."
    )
    return {
        "rationale": " ".join(problems or findings),
        "eligible": not problems,
        "problems": problems,
        "paid": str(paid),
        "already_refunded": str(refunded),
        "restocking_fee": str(fee),
        "refund_amount": str((amount - fee).quantize(CENTS)),
        "needs_finance": amount > threshold,
    }


RATIONALE_SCHEMA = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}},
    "required": ["rationale"],
}


@mission(
    "customer_refund",
    version=2,
    title="Customer refund",
    input=RefundRequest,
    searchable=("order_id", "customer_id"),
    amount="amount",
    currency=CURRENCY,
)
def customer_refund(ctx, request: RefundRequest) -> Verdict:
    """Refund a customer's order after policy check and approvals, paid through MCP."""
    order = ctx.step(
        "retrieve_order",
        knowledge_record,
        "order",
        request.order_id,
        title=lambda found: (
            f"Looked up order {request.order_id}"
            if found
            else f"Found no order {request.order_id} on record"
        ),
    )
    if order is None:
        return Verdict(
            outcome="rejected",
            summary=f"Rejected: no order {request.order_id} on record",
            details={"reason": f"no order {request.order_id} on record"},
        )
    figures = _read_payments(ctx, "read_payments", request)
    passages = ctx.step(
        "retrieve_policy",
        policy_passages,
        request.reason,
        title=lambda found: f"Found {len(found)} passages of the refund policy that apply",
    )
    today = ctx.now().date().isoformat()
    assessment = ctx.step(
        "validate_policy",
        assess_refund,
        order,
        figures,
        request.model_dump(mode="json"),
        today,
        title=_assessment_title,
    )
    citations = [p["citation"] for p in passages]
    if not assessment["eligible"]:
        problems = "; ".join(assessment["problems"])
        ctx.observe(f"Refund for {request.order_id} refused by policy: {problems}")
        return Verdict(
            outcome="rejected_by_policy",
            summary=f"Refused by policy for {request.order_id}: {problems}",
            details={"reasons": assessment["problems"], "citations": citations},
        )
    explained = ctx.llm(
        "explain",
        messages=_explain_messages(request, assessment, passages),
        schema=RATIONALE_SCHEMA,
        title="Drafted the explanation for the approvers",
    )
    rationale = assessment["rationale"]
    evidence = approval_context(
        request=request,
        order=order,
        figures=figures,
        assessment=assessment,
        passages=passages,
        explained=explained,
    )
    title = f"Refund {request.amount} EUR for order {request.order_id}"
    approvals = []
    supervisor = ctx.wait_for_decision(
        "supervisor_approval",
        role="supervisor",
        title=title,
        summary=rationale,
        context=evidence,
        timeout=timedelta(days=2),
    )
    if supervisor.outcome != "approved":
        return _declined("supervisor", supervisor, request)
    approvals.append(
        {"role": "supervisor", "by": supervisor.decided_by, "comment": supervisor.comment}
    )
    if assessment["needs_finance"]:
        ctx.observe(
            f"Above the {settings.STUDIOX_FINANCE_THRESHOLD} EUR threshold: finance sign-off needed"
        )
        # Finance may decide days later: they sign the figures as they are when asked.
        seen, figures = figures, _read_payments(ctx, "read_payments_for_finance", request)
        short = payments_system.shortfall(figures, amount=assessment["refund_amount"], earlier=seen)
        if short:
            return _not_refunded(ctx, request, short, approvals=approvals, figures=figures)
        finance = ctx.wait_for_decision(
            "finance_signoff",
            role="finance",
            title=f"Finance sign-off: {title}",
            summary=rationale,
            context=with_approval(
                approval_context(
                    request=request,
                    order=order,
                    figures=figures,
                    assessment=assessment,
                    passages=passages,
                    explained=explained,
                ),
                approvals[0],
            ),
            timeout=timedelta(days=3),
        )
        if finance.outcome != "approved":
            return _declined("finance", finance, request)
        approvals.append({"role": "finance", "by": finance.decided_by, "comment": finance.comment})
    ctx.sleep("cooling_off", timedelta(seconds=settings.STUDIOX_REFUND_COOLING_OFF_SECONDS))
    return _pay(ctx, request, assessment, seen=figures, approvals=approvals, citations=citations)


def _pay(
    ctx,
    request: RefundRequest,
    assessment: dict,
    *,
    seen: dict,
    approvals: list[dict],
    citations: list[str],
) -> Verdict:
    """Pay the approved amount if it still fits what is left to refund: the verdict."""
    amount = assessment["refund_amount"]
    # A refund may have been paid since the approvers read the figures: read them again.
    figures = _read_payments(ctx, "read_payments_before_paying", request)
    short = payments_system.shortfall(figures, amount=amount, earlier=seen)
    if short:
        return _not_refunded(ctx, request, short, approvals=approvals, figures=figures)
    paid = ctx.step(
        "issue_refund",
        lambda: payments_system.pay_refund(
            order_id=request.order_id,
            amount=amount,
            currency=CURRENCY,
            idempotency_key=ctx.idempotency_key,
        ),
        title=lambda answer: (
            f"Paid refund {answer['refund']['refund_id']} of {amount} EUR for {request.order_id}"
            if "refund" in answer
            else f"Payments refused the refund for {request.order_id}"
        ),
    )
    if "refused" in paid:
        # Another refund was paid between our read and our payment, and the ledger kept the
        # total within what was captured. Read what it paid, to say so.
        latest = _read_payments(ctx, "read_payments_after_refusal", request)
        short = payments_system.shortfall(latest, amount=amount, earlier=figures)
        if not short:
            raise NonRetryableError(f"payments refused the refund: {paid['refused']}")
        reason = f"another refund took it first: {short}"
        return _not_refunded(ctx, request, reason, approvals=approvals, figures=latest)
    return Verdict(
        outcome="refunded",
        summary=_refunded_summary(request, amount, paid["refund"], approvals),
        details={
            "order_id": request.order_id,
            "amount": amount,
            "restocking_fee": assessment["restocking_fee"],
            "approvals": approvals,
            "payment": paid["refund"],
            "citations": citations,
        },
    )


def _refunded_summary(
    request: RefundRequest, amount: str, refund: dict, approvals: list[dict]
) -> str:
    """ "Refunded 740.00 EUR for A-1004 (RF-000002); approved by supervisor and finance"."""
    approvers = " and ".join(approval["by"] or approval["role"] for approval in approvals)
    return (
        f"Refunded {amount} {CURRENCY} for {request.order_id} ({refund['refund_id']}); "
        f"approved by {approvers}"
    )


def _assessment_title(assessment: dict) -> str:
    if not assessment["eligible"]:
        return "Checked the refund policy: not eligible"
    return f"Checked the refund policy: {assessment['refund_amount']} {CURRENCY} may be refunded"


def _read_payments(ctx, name: str, request: RefundRequest) -> dict:
    """What the order paid and its refunds, read from the payments system as step `name`;
    the figures are the step's line on the rail, with the time of the read."""
    return ctx.call_tool(
        name,
        server=payments_system.SERVER,
        tool=payments_system.READ_TOOL,
        arguments={"order_id": request.order_id},
        title=lambda figures: (
            f"Payments for {request.order_id}: {payments_system.figures_line(figures)} "
            f"({payments_system.read_source(figures)})"
        ),
    )


def _not_refunded(
    ctx, request: RefundRequest, reason: str, *, approvals: list[dict], figures: dict
) -> Verdict:
    """The verdict when the approved amount no longer fits what is left to refund."""
    ctx.observe(f"Not refunded: {reason}")
    return Verdict(
        outcome="not_refunded",
        summary=f"Not refunded for {request.order_id}: {reason}",
        details={
            "order_id": request.order_id,
            "reason": reason,
            "approvals": approvals,
            "payments": figures,
        },
    )


@mission(
    "customer_refund",
    version=1,
    title="Customer refund",
    input=RefundRequest,
    searchable=("order_id", "customer_id"),
    amount="amount",
    currency=CURRENCY,
)
def customer_refund_v1(ctx, request: RefundRequest) -> dict | Verdict:
    """Version 1, registered while its missions finish: the payment's figures come from
    the knowledge record, and the refund is paid without a fresh read."""
    order = ctx.step("retrieve_order", knowledge_record, "order", request.order_id)
    if order is None:
        return {"outcome": "rejected", "reason": f"no order {request.order_id} on record"}
    payment = ctx.step("retrieve_payment", knowledge_record, "payment", order.get("payment_id", ""))
    figures = payments_system.read_from_knowledge(payment)
    passages = ctx.step("retrieve_policy", policy_passages, request.reason)
    today = ctx.now().date().isoformat()
    assessment = ctx.step(
        "validate_policy", assess_refund, order, figures, request.model_dump(mode="json"), today
    )
    citations = [p["citation"] for p in passages]
    if not assessment["eligible"]:
        ctx.observe(
            f"Refund for {request.order_id} refused by policy: {'; '.join(assessment['problems'])}"
        )
        return {
            "outcome": "rejected_by_policy",
            "reasons": assessment["problems"],
            "citations": citations,
        }
    explained = ctx.llm(
        "explain",
        messages=_explain_messages(request, assessment, passages),
        schema=RATIONALE_SCHEMA,
    )
    rationale = assessment["rationale"]
    evidence = approval_context(
        request=request,
        order=order,
        figures=figures,
        assessment=assessment,
        passages=passages,
        explained=explained,
    )
    title = f"Refund {request.amount} EUR for order {request.order_id}"
    approvals = []
    supervisor = ctx.wait_for_decision(
        "supervisor_approval",
        role="supervisor",
        title=title,
        summary=rationale,
        context=evidence,
        timeout=timedelta(days=2),
    )
    if supervisor.outcome != "approved":
        return _declined("supervisor", supervisor, request)
    approvals.append(
        {"role": "supervisor", "by": supervisor.decided_by, "comment": supervisor.comment}
    )
    if assessment["needs_finance"]:
        ctx.observe(
            f"Above the {settings.STUDIOX_FINANCE_THRESHOLD} EUR threshold: finance sign-off needed"
        )
        finance = ctx.wait_for_decision(
            "finance_signoff",
            role="finance",
            title=f"Finance sign-off: {title}",
            summary=rationale,
            context=with_approval(evidence, approvals[0]),
            timeout=timedelta(days=3),
        )
        if finance.outcome != "approved":
            return _declined("finance", finance, request)
        approvals.append({"role": "finance", "by": finance.decided_by, "comment": finance.comment})
    ctx.sleep("cooling_off", timedelta(seconds=settings.STUDIOX_REFUND_COOLING_OFF_SECONDS))
    paid = ctx.call_tool(
        "issue_refund",
        server="payments",
        tool="issue_refund",
        arguments={
            "order_id": request.order_id,
            "amount": assessment["refund_amount"],
            "currency": CURRENCY,
        },
    )
    ctx.observe(f"Refunded {assessment['refund_amount']} EUR for order {request.order_id}")
    return {
        "outcome": "refunded",
        "order_id": request.order_id,
        "amount": assessment["refund_amount"],
        "restocking_fee": assessment["restocking_fee"],
        "approvals": approvals,
        "payment": paid,
        "citations": citations,
    }


def approval_context(
    *,
    request: RefundRequest,
    order: dict,
    figures: dict | None,
    assessment: dict,
    passages: list[dict],
    explained: dict,
) -> dict:
    """What the approvers see, in the Decision Queue's evidence shape (docs/decision-queue.md):
    labelled facts with where they come from, the AI's rationale, and the policy passages with
    their citations."""
    facts = [
        ("Amount asked", f"{request.amount} {CURRENCY}", "request"),
        ("Refund after fees", f"{assessment['refund_amount']} {CURRENCY}", "policy check"),
        ("Restocking fee", f"{assessment['restocking_fee']} {CURRENCY}", "policy check"),
        ("Customer's reason", request.reason, "request"),
        ("Order", _order_line(order), "knowledge"),
        *(("Item", _item_line(item, order), "knowledge") for item in order.get("items", [])),
        ("Payment", _payment_line(figures), _payment_source(figures)),
        ("Policy check", assessment["rationale"], "policy check"),
        ("Rationale written by", _rationale_author(explained), _rationale_source(explained)),
    ]
    return {
        "evidence": [
            {"label": label, "value": value, "source": source} for label, value, source in facts
        ],
        "rationale": _rationale(explained, request=request, assessment=assessment),
        "passages": [{"text": p["text"], "citation": p["citation"]} for p in passages],
    }


OFFLINE_LABEL = "Offline model: summary composed from the evidence above."


def _rationale(explained: dict, *, request: RefundRequest, assessment: dict) -> str:
    """The AI's rationale; the offline model writes a placeholder, not reasons, so then the
    approvers get a summary of the evidence, labelled as such."""
    if explained.get("provider") != "offline":
        return (explained.get("parsed") or {}).get("rationale") or explained.get("content", "")
    return (
        f"{OFFLINE_LABEL} Order {request.order_id}: {request.amount} {CURRENCY} asked because "
        f"“{request.reason}”, {assessment['refund_amount']} {CURRENCY} to refund after fees. "
        f"{assessment['rationale']}"
    )


def _rationale_source(explained: dict) -> str:
    # The offline model writes no reasons: the mission composed the rationale, not an AI.
    return "mission" if explained.get("provider") == "offline" else "AI"


def _rationale_author(explained: dict) -> str:
    if explained.get("provider") == "offline":
        return f"{explained.get('model', '')} (offline: no language model is configured)"
    return explained.get("model", "")


def with_approval(context: dict, approval: dict) -> dict:
    """The finance tier's context: the supervisor's approval first."""
    comment = f": “{approval['comment']}”" if approval["comment"] else ""
    fact = {
        "label": "Supervisor",
        "value": f"approved by {approval['by']}{comment}",
        "source": "Decision Queue",
    }
    return {**context, "evidence": [fact, *context["evidence"]]}


def _order_line(order: dict) -> str:
    currency = order.get("currency", CURRENCY)
    parts = [str(order.get("key") or order.get("id", "")), f"{order.get('total', '')} {currency}"]
    if order.get("delivered_at"):
        parts.append(f"delivered {order['delivered_at']}")
    # The order record's refunded total is a copy that goes stale; the payment line has it.
    return " · ".join(parts)


def _item_line(item: dict, order: dict) -> str:
    name = item.get("name", item.get("sku", "item"))
    price = f"{item.get('unit_price', '')} {order.get('currency', CURRENCY)}"
    line = f"{item.get('quantity', 1)} × {name} ({item.get('category', '')}) {price}"
    flags = [
        flag
        for flag, on in (("final sale", item.get("final_sale")), ("opened", item.get("opened")))
        if on
    ]
    return " · ".join([line, *flags])


def _payment_line(figures: dict | None) -> str:
    if figures is None:
        return "none on record"
    return payments_system.figures_line(figures)


def _payment_source(figures: dict | None) -> str:
    return payments_system.read_source(figures) if figures else "knowledge"


def _declined(role: str, decision, request: RefundRequest) -> Verdict:
    """The verdict when an approver says no, or does not answer in time."""
    outcome = "expired" if decision.outcome == "expired" else "rejected"
    if outcome == "expired":
        summary = (
            f"Expired: no {role} decision in time on refunding {request.amount} {CURRENCY} "
            f"for {request.order_id}"
        )
    else:
        comment = f": “{decision.comment}”" if decision.comment else ""
        summary = (
            f"Rejected by {decision.decided_by or role} ({role}): refund of {request.amount} "
            f"{CURRENCY} for {request.order_id}{comment}"
        )
    details = {
        "order_id": request.order_id,
        "by": decision.decided_by,
        "role": role,
        "comment": decision.comment,
    }
    return Verdict(outcome=outcome, summary=summary, details=details)


def _explain_messages(request: RefundRequest, assessment: dict, passages: list[dict]) -> list[dict]:
    policy = "\n".join(f"[{p['citation']}] {p['text']}" for p in passages)
    return [
        {
            "role": "system",
            "content": "You explain refund decisions to approvers in two sentences, "
            "citing the policy.",
        },
        {
            "role": "user",
            "content": (
                f"Order {request.order_id}: refund {request.amount} EUR "
                f"because: {request.reason}.\n"
                f"Assessment: {assessment}.\nPolicy:\n{policy}"
            ),
        },
    ]
