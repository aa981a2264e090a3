"""In Chromium: the quarterly reconciliation's page lists the twelve missions it started, one
per system, with their statuses, while the parent waits for finance's sign-off."""

from __future__ import annotations

import pytest

from missions.models import Mission
from tests.support.pages import session_cookie
from tests.test_reconciliation import controller, ledgers, run, start  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

TREE = 'section[aria-labelledby="children-heading"]'


@pytest.fixture
def parent(ledgers, requester) -> Mission:  # noqa: F811 (the fixture imported above)
    """The seeded quarter reconciled in-process up to finance's sign-off; before the browser
    starts, as Playwright's event loop would then own this thread."""
    parent = run(start())
    assert (parent.status, parent.waiting_on) == ("waiting", "any"), parent.error
    return parent


def test_the_parent_page_lists_its_twelve_children_with_their_statuses(
    parent, requester, live_web, browser
):
    children = list(Mission.objects.filter(parent=parent).order_by("created_at"))
    assert len(children) == 12

    context = browser.new_context(base_url=live_web.url, viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": session_cookie(requester), "url": live_web.url}]
    )
    page = context.new_page()
    page.goto(f"/missions/{parent.id}/")

    rows = page.locator(f"{TREE} ul.mission-tree > li[data-mission-id]")
    assert rows.count() == 12
    assert [rows.nth(i).get_attribute("data-mission-id") for i in range(12)] == [
        str(child.id) for child in children
    ]
    for index in range(12):
        row = rows.nth(index)
        assert row.is_visible()
        assert row.get_attribute("data-status") == "succeeded"
        # Each child's answer wears the badge; its status sits beside it.
        outcome = children[index].verdict["status"]
        assert row.locator(".badge.outcome").get_attribute("data-outcome") == outcome
        assert row.locator(".badge[data-status]").inner_text().strip() == "Succeeded"
    assert page.locator(f"{TREE} .tree-more").count() == 0  # all twelve, none behind a link

    rows.first.locator("a").first.click()
    page.wait_for_url(f"**/missions/{children[0].id}/")
    line = page.locator("#mission-observations li", has_text="Compared ERP with the general")
    line.wait_for(timeout=30_000)
    assert "in agreement" in line.inner_text()
    context.close()
