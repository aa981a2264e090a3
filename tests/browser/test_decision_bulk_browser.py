"""In Chromium, against uvicorn: an approver ticks decisions in the live queue, writes one
comment and approves them together; the result page says what happened to each, and the
ticks survive the list refreshing itself meanwhile."""

import pytest
from playwright.sync_api import expect

from decisions.models import Decision
from tests.conftest import make_user
from tests.support.decisions import open_decision

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_bulk_approve_decides_each_by_the_rules_and_shows_each_result(live_web, browser, sign_in):
    requester = make_user("requester")
    supervisor = make_user("supervisor", "supervisor")
    first = open_decision(requester, "Refund A-1001", context={"amount": "120.00"})
    second = open_decision(requester, "Refund A-1004", context={"amount": "740.00"})
    own = open_decision(supervisor, "My own refund", context={"amount": "30.00"})
    page = browser.new_page(base_url=live_web.url)
    sign_in(page, "supervisor", "pw-supervisor", next="/decisions/")

    for decision in (first, second, own):
        page.get_by_role("checkbox", name=f"Select {decision.title}").check()
    # The live list swaps itself when the queue changes; the ticks must survive that.
    open_decision(requester, "Refund A-1007", context={"amount": "99.00"})
    page.get_by_role("link", name="Refund A-1007").wait_for(timeout=30_000)
    for decision in (first, second, own):
        expect(page.get_by_role("checkbox", name=f"Select {decision.title}")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Select Refund A-1007")).not_to_be_checked()

    page.get_by_label("Comment for all").fill("Checked against the orders")
    page.get_by_role("button", name="Approve selected").click()

    expect(page.get_by_test_id("bulk-headline")).to_have_text(
        "Approve selected: 2 decided, 1 refused."
    )
    refused = page.locator(f'tr[data-decision-id="{own.id}"]')
    expect(refused).to_contain_text("Refused")
    expect(refused).to_contain_text("You started this mission, so someone else must decide it.")
    expect(page.locator(f'tr[data-decision-id="{first.id}"]')).to_contain_text("Decided")
    decided = Decision.objects.filter(id__in=[first.id, second.id, own.id])
    assert {d.title: (d.status, d.comment) for d in decided} == {
        "Refund A-1001": ("approved", "Checked against the orders"),
        "Refund A-1004": ("approved", "Checked against the orders"),
        "My own refund": ("pending", ""),
    }
