"""The customer refund: the showcase mission (docs/authoring.md).

Knowledge lookup, a policy check grounded in the refund policy's passages, supervisor
approval, finance sign-off above the threshold, a cooling-off timer, the refund through the
payments MCP tool, and a verdict. Every step is checkpointed: a crash anywhere resumes here
without paying twice (the payment tool dedupes by the step's idempotency key).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from pydantic import BaseModel, Field

from knowledge.services import knowledge_record, knowledge_search
from missions.runtime import mission

CENTS = Decimal("0.01")


class RefundRequest(BaseModel):
    order_id: str = Field(
        min_length=1, max_length=50, description="the order to refund, e.g. A-1001"
    )
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2, description="amount in EUR")
    reason: str = Field(min_length=3, max_length=500, description="the customer's reason")


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


def assess_refund(order: dict, payment: dict | None, request: dict, today: str) -> dict:
    """Check the request against the refund policy; the reasons cite the policy's rules."""
    amount = Decimal(request["amount"])
    problems: list[str] = []
    paid = Decimal(str(payment.get("amount", "0"))) if payment else Decimal("0")
    refunded = Decimal(str(payment.get("refunded_amount", "0"))) if payment else Decimal("0")
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
    if payment is None:
        problems.append("no payment found for this order")
    elif refunded >= paid:
        problems.append(f"already refunded in full ({refunded} of {paid})")
    elif amount > paid - refunded:
        problems.append(
            f"asks {amount} but only {paid - refunded} of the {paid} paid is refundable"
        )
    fee_rate = Decimal(str(settings.STUDIOX_RESTOCKING_FEE_RATE))
    opened_electronics = any(
        item.get("category") == "electronics" and item.get("opened")
        for item in order.get("items", [])
    )
    fee = (amount * fee_rate).quantize(CENTS) if opened_electronics else Decimal("0.00")
    threshold = Decimal(str(settings.STUDIOX_FINANCE_THRESHOLD))
    if payment is not None and not problems:
        findings.append(
            f"Paid {paid} EUR, {refunded} EUR refunded so far (§ Already refunded orders)."
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


@mission("customer_refund", version=1, title="Customer refund", input=RefundRequest)
def customer_refund(ctx, request: RefundRequest) -> dict:
    """Refund a customer's order after policy check and approvals, paid through MCP."""
    order = ctx.step("retrieve_order", knowledge_record, "order", request.order_id)
    if order is None:
        return {"outcome": "rejected", "reason": f"no order {request.order_id} on record"}
    payment = ctx.step("retrieve_payment", knowledge_record, "payment", order.get("payment_id", ""))
    passages = ctx.step("retrieve_policy", policy_passages, request.reason)
    today = ctx.now().date().isoformat()
    assessment = ctx.step(
        "validate_policy", assess_refund, order, payment, request.model_dump(mode="json"), today
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
    evidence = {
        "ai_rationale": (explained.get("parsed") or {}).get("rationale")
        or explained.get("content", ""),
        "ai_model": explained.get("model", ""),
        "amount": f"{request.amount} EUR",
        "refund_amount": f"{assessment['refund_amount']} EUR",
        "restocking_fee": f"{assessment['restocking_fee']} EUR",
        "order": order,
        "payment": payment,
        "reason": request.reason,
        "policy": passages,
        "rationale": rationale,
    }
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
            context={**evidence, "supervisor": approvals[0]},
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
            "currency": "EUR",
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


def _declined(role: str, decision, request: RefundRequest) -> dict:
    outcome = "expired" if decision.outcome == "expired" else "rejected"
    return {
        "outcome": outcome,
        "order_id": request.order_id,
        "by": decision.decided_by,
        "role": role,
        "comment": decision.comment,
    }


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
