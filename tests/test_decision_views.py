"""The web Decision Queue: pages, HTMX partials, permissions, CSRF, conflicts."""

import pytest
from django.test import Client

from decisions.models import Decision
from missions.services import mission_start
from tests.conftest import make_user
from tests.support.engine import drain
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def decision(requester) -> Decision:
    mission = drain(
        mission_start(type="test_approval", input={"amount": "80"}, started_by=requester).mission
    )
    return Decision.objects.get(mission=mission)


def test_the_queue_lists_pending_decisions_of_my_roles(decision, supervisor):
    page = logged_in(supervisor).get("/decisions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Approve 80" in html and "<html" in html
    assert 'hx-trigger="refresh, every 5s"' in html


def test_htmx_gets_only_the_list_partial(decision, supervisor):
    html = logged_in(supervisor).get("/decisions/?view=queue&sort=age", **HTMX).content.decode()
    assert "Approve 80" in html
    assert "<html" not in html and html.lstrip().startswith('<div id="queue"')


def test_other_roles_do_not_see_it(decision, finance):
    assert "Approve 80" not in logged_in(finance).get("/decisions/").content.decode()
    assert logged_in(finance).get(f"/decisions/{decision.id}/").status_code == 404


def test_the_queue_requires_login(decision):
    response = Client().get("/decisions/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_detail_page_shows_context_and_the_mission(decision, supervisor):
    html = logged_in(supervisor).get(f"/decisions/{decision.id}/").content.decode()
    assert "A test approval" in html and "80" in html
    assert 'name="outcome" value="approved"' in html
    assert "Waiting for supervisor decision" in html  # the mission's rail


def test_an_open_page_learns_only_of_changes_it_does_not_show(decision, supervisor):
    from decisions.services import decision_decide

    client = logged_in(supervisor)
    url = f"/decisions/{decision.id}/?seen={decision.live_state}"
    assert client.get(url, **HTMX).status_code == 204  # nothing changed: nothing to swap

    colleague = make_user("colleague", "supervisor")
    decision_decide(decision=decision, user=colleague, outcome="rejected", comment="duplicate")
    answer = client.get(url, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200 and "<html" not in html
    assert "This decision changed while you had it open." in html
    assert "Rejected" in html and "colleague" in html
    assert 'name="outcome"' not in html  # no form left to post
    decision.refresh_from_db()
    assert f'data-state="{decision.live_state}"' in html
    assert 'id="decision-status" hx-swap-oob="true"' in html


def test_the_change_check_is_as_private_as_the_page(decision, finance):
    url = f"/decisions/{decision.id}/?seen=x"
    assert logged_in(finance).get(url, **HTMX).status_code == 404
    assert Client().get(url, **HTMX).status_code == 302


def test_approving_through_htmx_answers_with_the_actions_fragment(decision, supervisor):
    response = logged_in(supervisor).post(
        f"/decisions/{decision.id}/decide/", {"outcome": "approved", "comment": "ok"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card" id="actions"')
    assert "You approved this decision" in html
    # What the decision changed elsewhere on the page comes along, swapped out of band.
    status = html.split('<span id="decision-status" hx-swap-oob="true">')[1].split("</span>")[0]
    assert "Approved" in status and "Pending" not in status
    rail = html.split('id="mission-rail" hx-swap-oob="true"')[1].split("</section>")[0]
    assert "Approve 80: approved by supervisor — “ok”" in rail
    audit = html.split('id="audit" hx-swap-oob="true"')[1].split("</section>")[0]
    assert "Approved" in audit and "supervisor" in audit
    decision.refresh_from_db()
    assert (decision.status, decision.comment, decision.decided_by_name) == (
        "approved",
        "ok",
        "supervisor",
    )


def test_a_late_approver_gets_409_naming_who_decided(decision, supervisor):
    other = make_user("other", "supervisor")
    logged_in(supervisor).post(f"/decisions/{decision.id}/decide/", {"outcome": "rejected"}, **HTMX)
    response = logged_in(other).post(
        f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, **HTMX
    )
    assert response.status_code == 409
    assert "Already rejected by supervisor" in response.content.decode()


def test_the_requester_gets_403_with_the_reason(requester, decision):
    requester.groups.add(decision.role)
    response = logged_in(requester).post(
        f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, **HTMX
    )
    assert response.status_code == 403
    assert "You started this mission" in response.content.decode()


def test_a_bad_outcome_gets_400(decision, supervisor):
    response = logged_in(supervisor).post(
        f"/decisions/{decision.id}/decide/", {"outcome": "perhaps"}, **HTMX
    )
    assert response.status_code == 400


def test_posts_need_the_csrf_token(decision, supervisor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(supervisor)
    response = client.post(f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, **HTMX)
    assert response.status_code == 403
    decision.refresh_from_db()
    assert decision.is_pending
    page = client.get(f"/decisions/{decision.id}/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    ok = client.post(
        f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, HTTP_X_CSRFTOKEN=token, **HTMX
    )
    assert ok.status_code == 200


def test_claim_shows_in_the_claimed_view_and_release_returns_it(decision, supervisor):
    client = logged_in(supervisor)
    assert (
        "Claimed: your colleagues"
        in client.post(
            f"/decisions/{decision.id}/claim/", {"action": "claim"}, **HTMX
        ).content.decode()
    )
    assert "Approve 80" in client.get("/decisions/?view=claimed").content.decode()
    client.post(f"/decisions/{decision.id}/claim/", {"action": "release"}, **HTMX)
    assert "Approve 80" not in client.get("/decisions/?view=claimed", **HTMX).content.decode()


def test_the_archive_lists_what_i_decided(decision, supervisor):
    client = logged_in(supervisor)
    client.post(f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, **HTMX)
    assert "Approve 80" in client.get("/decisions/?view=archive&status=approved").content.decode()
    assert (
        "Approve 80" not in client.get("/decisions/?view=archive&status=rejected").content.decode()
    )


def test_the_evidence_of_a_refund_is_laid_out_for_people(requester, supervisor):
    """The refund declares its evidence in the queue's generic shape (decisions/evidence.py)."""
    from decisions.waits import decision_open
    from missions.models import Mission
    from showcases.refund.mission import RefundRequest, approval_context, with_approval

    order = {
        "key": "A-1004",
        "total": "740.00",
        "currency": "EUR",
        "delivered_at": "2026-11-23",
        "items": [
            {
                "name": "Oak standing desk",
                "category": "furniture",
                "unit_price": "740.00",
                "quantity": 1,
                "opened": True,
            }
        ],
    }
    figures = {
        "order_id": "A-1004",
        "currency": "EUR",
        "paid": "740.00",
        "refunded": "0.00",
        "refundable": "740.00",
        "refunds": [],
        "read_at": "2026-12-01T14:02:00+00:00",
    }
    evidence = approval_context(
        request=RefundRequest(order_id="A-1004", amount="740.00", reason="arrived damaged"),
        order=order,
        figures=figures,
        assessment={
            "refund_amount": "740.00",
            "restocking_fee": "0.00",
            "rationale": "Within the 30-day window; nothing refunded yet.",
        },
        passages=[
            {
                "citation": "Refund policy § Time window",
                "text": "Refunds are accepted within 30 days of delivery.",
            }
        ],
        explained={
            "parsed": {"rationale": "The desk arrived damaged eight days ago."},
            "model": "gpt-test",
            "provider": "openai",
        },
    )
    mission = Mission.objects.create(type="customer_refund", version=1, started_by=requester)
    decision = decision_open(
        mission=mission,
        step_name="finance_signoff",
        role="supervisor",
        title="Refund 740.00 EUR for order A-1004",
        summary="Within policy",
        context=with_approval(evidence, {"by": "sam", "comment": "fine"}),
        options=["approved", "rejected"],
        due_at=None,
    )
    html = logged_in(supervisor).get(f"/decisions/{decision.id}/").content.decode()
    for shown in (
        '<dt>Amount asked</dt><dd>740.00 EUR <span class="muted">(request)</span></dd>',
        "A-1004 · 740.00 EUR · delivered 2026-11-23",
        "1 × Oak standing desk (furniture) 740.00 EUR · opened",
        "paid 740.00 EUR · refunded 0.00 EUR · 740.00 EUR left to refund "
        '<span class="muted">(payments, read at 2026-12-01 14:02 UTC)</span>',
        "<dt>Supervisor</dt><dd>approved by sam: “fine”",
        "<p>Refunds are accepted within 30 days of delivery.</p>",
        "<cite>Refund policy § Time window</cite>",
        "<dt>Policy check</dt><dd>Within the 30-day window; nothing refunded yet.",
        "<p>The desk arrived damaged eight days ago.</p>",
        "<dt>Rationale written by</dt><dd>gpt-test",
    ):
        assert shown in html, shown
