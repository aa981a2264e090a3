"""The Decision Queue shows any mission's evidence in one generic shape (decisions/evidence.py,
docs/decision-queue.md): it knows no mission's keys."""

import pytest
from pydantic import BaseModel

from decisions.models import Decision
from missions.runtime import mission
from missions.services import mission_start
from tests.support.decisions import open_decision
from tests.support.engine import drain
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


class Invoice(BaseModel):
    supplier: str
    number: str
    total: str


@mission("test_invoice_approval", version=1, title="Invoice approval", input=Invoice)
def invoice_approval(ctx, invoice: Invoice) -> dict:
    """Not a refund: a supplier invoice that a supervisor approves before it is paid."""
    decided = ctx.wait_for_decision(
        "approval",
        role="supervisor",
        title=f"Pay invoice {invoice.number}",
        summary="Matches the purchase order.",
        context={
            "evidence": [
                {"label": "Supplier", "value": invoice.supplier, "source": "purchasing"},
                {"label": "Invoice total", "value": invoice.total},
            ],
            "rationale": "Same quantities and prices as purchase order PO-77.",
            "passages": [
                {"text": "Invoices up to 5,000 EUR need one approver.", "citation": "AP § 3"}
            ],
            "links": [{"label": "Invoice PDF", "url": "https://erp.example/invoices/INV-9"}],
            "cost_centre": "CC-12",
            "lines": [{"sku": "X"}],
        },
    )
    return {"outcome": decided.outcome}


def page_of(decision: Decision, user) -> str:
    response = logged_in(user).get(f"/decisions/{decision.id}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_decision_of_any_mission_shows_the_evidence_it_declared(requester, supervisor):
    started = mission_start(
        type="test_invoice_approval",
        input={"supplier": "ACME Tools", "number": "INV-9", "total": "1200.00 EUR"},
        started_by=requester,
    ).mission
    html = page_of(Decision.objects.get(mission=drain(started)), supervisor)
    for shown in (
        '<dt>Supplier</dt><dd>ACME Tools <span class="muted">(purchasing)</span></dd>',
        "<dt>Invoice total</dt><dd>1200.00 EUR</dd>",
        "<h3>Rationale</h3><p>Same quantities and prices as purchase order PO-77.</p>",
        "<p>Invoices up to 5,000 EUR need one approver.</p>",
        "<cite>AP § 3</cite>",
        'href="https://erp.example/invoices/INV-9"',
        "<dt>Cost centre</dt><dd>CC-12</dd>",
    ):
        assert shown in html, shown
    assert "<dt>Lines</dt>" not in html  # not plain: only in the JSON of all context


def test_a_link_that_would_run_in_the_approvers_page_is_left_out(requester, supervisor):
    links = [
        {"label": "Run", "url": "javascript:alert(1)"},
        {"label": "Elsewhere", "url": "//evil.example/x"},
        {"label": "Data", "url": "data:text/html,<b>x</b>"},
        {"label": "Mission", "url": "/missions/?status=waiting"},
    ]
    html = page_of(open_decision(requester, context={"links": links}), supervisor)
    assert 'href="/missions/?status=waiting"' in html
    for refused in ('href="javascript:', 'href="//evil.example', 'href="data:'):
        assert refused not in html, refused


@pytest.mark.parametrize(
    "context",
    [
        {"evidence": "A-1004"},
        {"evidence": [{"value": "no label"}, {"label": "No value"}, "text", None]},
        {"passages": {"text": "not a list"}, "links": [{"url": 7}], "rationale": {"x": 1}},
        {"evidence": [{"label": {"x": 1}, "value": ["a"]}]},
    ],
)
def test_evidence_that_does_not_fit_the_shape_leaves_the_page_working(
    requester, supervisor, context
):
    html = page_of(open_decision(requester, context=context), supervisor)
    assert "The mission attached no evidence." in html
    assert "All context (JSON)" in html
