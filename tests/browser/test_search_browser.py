"""In Chromium: typing an order id in the missions list's search box narrows the list to that
refund as you type, shows its order, customer and amount, and keeps the search in the URL."""

from __future__ import annotations

import pytest

from missions.models import Mission
from tests.support.pages import session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def refund(user, order_id: str, customer_id: str, amount: str) -> Mission:
    """A refund as the form starts it; the list reads the row, no worker needs to run it."""
    return Mission.objects.create(
        type="customer_refund",
        version=2,
        title="Customer refund",
        input={
            "order_id": order_id,
            "customer_id": customer_id,
            "amount": amount,
            "reason": "arrived damaged",
        },
        started_by=user,
        status=Mission.Status.WAITING,
    )


def test_the_search_box_finds_a_refund_by_its_order(requester, live_web, browser):
    wanted = refund(requester, "A-1004", "C-504", "740.00")
    refund(requester, "A-1001", "C-501", "120.00")
    context = browser.new_context(base_url=live_web.url)
    context.add_cookies(
        [{"name": "sessionid", "value": session_cookie(requester), "url": live_web.url}]
    )
    page = context.new_page()
    page.goto("/missions/")
    rows = page.locator("#mission-table tbody tr")
    assert rows.count() == 2

    page.get_by_label("Search").press_sequentially("a-1004")
    page.locator("#mission-table", has_text="1 mission").wait_for(timeout=15_000)

    assert rows.count() == 1
    row = rows.first
    assert row.locator(f'a[href="/missions/{wanted.id}/"]').count() == 1
    assert "A-1004" in row.locator('[data-key="order_id"]').inner_text()
    assert "C-504" in row.locator('[data-key="customer_id"]').inner_text()
    assert row.locator("[data-amount]").inner_text() == "740.00 EUR"
    page.wait_for_url("**/missions/?*q=a-1004*")
    export = page.get_by_role("link", name="Export CSV")
    assert "q=a-1004" in export.get_attribute("href")
    assert "format=csv" in export.get_attribute("href")
    context.close()
