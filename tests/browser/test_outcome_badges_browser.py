"""In Chromium: a mission's business outcome wears the colour (a rejected refund is not a green
"Succeeded"), its status sits beside it smaller and plain, its verdict JSON wraps instead of
clipping, and the rail speaks business terms until the technical view is asked for."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from missions.models import Mission
from tests.support.pages import session_cookie
from tests.support.rail import record

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

GREEN = "rgb(220, 243, 230)"
RED = "rgb(251, 224, 222)"
TRANSPARENT = "rgba(0, 0, 0, 0)"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
REJECTED = "Rejected by supervisor (supervisor): refund of 60.00 EUR for A-1001"
REFUNDED = "Refunded 740.00 EUR for A-1004 (RF-000002); approved by supervisor and finance"


def finished(user, outcome: str, summary: str, **verdict) -> Mission:
    return Mission.objects.create(
        type="customer_refund",
        version=2,
        title="Customer refund",
        input={"order_id": "A-1001", "amount": "60.00", "reason": "damaged"},
        started_by=user,
        status=Mission.Status.SUCCEEDED,
        outcome=outcome,
        summary=summary,
        verdict={"outcome": outcome, "summary": summary, **verdict},
        finished_at=timezone.now(),
    )


def style(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")


@pytest.fixture
def page_for(live_web_factory, browser):
    web = live_web_factory(STUDIOX_LIVE_POLL_SECONDS="0.2")
    contexts = []

    def page_for(user, *, width: int = 1280):
        context = browser.new_context(base_url=web.url, viewport={"width": width, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session_cookie(user), "url": web.url}])
        contexts.append(context)
        return context.new_page()

    yield page_for
    for context in contexts:
        context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_list_colours_the_outcome_and_keeps_the_status_plain(requester, page_for, width):
    finished(requester, "rejected", REJECTED, by="supervisor")
    finished(requester, "refunded", REFUNDED, amount="740.00")
    page = page_for(requester, width=width)
    page.goto("/missions/")

    rejected_badge = '#mission-table [data-outcome="rejected"]'
    refunded_badge = '#mission-table [data-outcome="refunded"]'
    assert page.inner_text(rejected_badge) == "Rejected"
    assert style(page, rejected_badge, "backgroundColor") == RED
    assert style(page, refunded_badge, "backgroundColor") == GREEN
    status = page.locator("#mission-table .badge.secondary").first
    assert status.inner_text() == "Succeeded"
    assert status.evaluate("e => getComputedStyle(e).backgroundColor") == TRANSPARENT
    outcome_size = float(style(page, rejected_badge, "fontSize").removesuffix("px"))
    assert float(status.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px")) < (
        outcome_size
    )
    assert page.get_by_text(REJECTED).is_visible() and page.get_by_text(REFUNDED).is_visible()
    assert page.evaluate(OVERFLOW) <= 0, "the page scrolls sideways"


def test_the_mission_page_shows_outcome_summary_and_a_verdict_that_wraps(requester, page_for):
    long_reason = "the parcel arrived open, the screen cracked and the charger missing " * 4
    mission = finished(requester, "rejected", REJECTED, comment=long_reason.strip())
    page = page_for(requester, width=390)
    page.goto(f"/missions/{mission.id}/")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=60_000)

    # The live region is fetched again as the socket opens: expect() waits for the new one.
    outcome = page.get_by_test_id("mission-outcome")
    expect(outcome).to_have_text("Rejected")
    expect(outcome).to_have_css("background-color", RED)
    status = page.get_by_test_id("mission-status")
    expect(status).to_have_text("Succeeded")
    expect(status).to_have_css("background-color", TRANSPARENT)
    expect(page.get_by_test_id("mission-summary")).to_have_text(REJECTED)
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_contain_text("the charger missing")
    # Wrapped, not clipped: every line of the JSON fits the box without a sideways scroll.
    page.wait_for_function(
        "() => { const e = document.querySelector('[data-testid=verdict]');"
        " return e && e.scrollWidth <= e.clientWidth; }",
        timeout=10_000,
    )
    assert page.evaluate(OVERFLOW) <= 0


def test_the_rail_shows_business_lines_until_the_technical_view_is_asked_for(requester, page_for):
    mission = Mission.objects.create(
        type="test_count",
        version=1,
        title="Counting",
        input={"steps": 1},
        started_by=requester,
        status=Mission.Status.RUNNING,
    )
    record(mission, "Looked up order A-1004", kind="step_completed", title="Looked up order")
    record(mission, "Completed step 'n:0'", kind="step_completed", attempts=1)
    page = page_for(requester)
    page.goto(f"/missions/{mission.id}/")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=60_000)
    rail = page.locator("#mission-observations")
    assert rail.get_by_text("Looked up order A-1004").is_visible()
    assert rail.get_by_text("Completed step 'n:0'").count() == 0

    # Live: a technical line does not arrive; the business line after it does.
    record(mission, "Step 'n:1' failed (attempt 1 of 3)", kind="retrying", technical=True)
    record(mission, "Checked the refund policy", kind="step_completed", title="Checked")
    rail.get_by_text("Checked the refund policy").wait_for(timeout=30_000)
    assert rail.get_by_text("Step 'n:1' failed").count() == 0

    page.get_by_test_id("rail-view-toggle").click()
    page.wait_for_url("**?view=technical")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=60_000)
    rail = page.locator("#mission-observations")
    assert rail.get_by_text("Completed step 'n:0'").is_visible()
    assert rail.get_by_text("Step 'n:1' failed (attempt 1 of 3)").is_visible()
    record(mission, "Step 'n:1' failed (attempt 2 of 3)", kind="retrying", technical=True)
    rail.get_by_text("Step 'n:1' failed (attempt 2 of 3)").wait_for(timeout=30_000)
