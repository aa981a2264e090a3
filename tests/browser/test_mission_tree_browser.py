"""In Chromium: a parent mission's page shows the missions it started as a tree and its
parallel step's progress, on a desktop and a phone, and its rail follows a child live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from missions.models import MapItem, Mission, Step
from tests.support.pages import session_cookie
from tests.support.rail import record

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

TREE = 'section[aria-labelledby="children-heading"]'
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def mission(user, title: str, *, parent: Mission | None = None, **fields) -> Mission:
    fields.setdefault("status", Mission.Status.RUNNING)
    return Mission.objects.create(
        type="test_count",
        version=1,
        title=title,
        input={"steps": 1},
        started_by=user,
        parent=parent,
        parent_step=f"start:{title}" if parent else "",
        **fields,
    )


def reconciliation(user) -> tuple[Mission, list[Mission]]:
    """A parent with three children (one with a child of its own) and a map of 12 items."""
    parent = mission(user, "Month-end close", status=Mission.Status.WAITING, waiting_on="map")
    bank = mission(user, "Bank reconciliation", parent=parent, current_step="compare_ledgers")
    cards = mission(
        user,
        "Card reconciliation for every corporate card of the group's subsidiaries in 2026",
        parent=parent,
        status=Mission.Status.WAITING,
        waiting_on=Mission.WaitingOn.DECISION,
        waiting_detail="Approve the write-off of the unmatched card payments of December",
        waiting_since=timezone.now(),
    )
    payroll = mission(user, "Payroll check", parent=parent, status=Mission.Status.SUCCEEDED)
    fx = mission(user, "FX revaluation", parent=bank, current_step="fetch_rates")
    now = timezone.now()
    Step.objects.create(
        mission=parent,
        name="compare_accounts",
        position=0,
        kind=Step.Kind.MAP,
        status=Step.Status.WAITING,
        idempotency_key=f"{parent.id}:compare_accounts",
        started_at=now,
    )
    for index in range(12):
        status = MapItem.Status.COMPLETED if index < 7 else MapItem.Status.RUNNING
        MapItem.objects.create(
            mission=parent,
            step_name="compare_accounts",
            index=index,
            label=f"Account 4711-{index:02d} Operating account (EUR)",
            status=status,
            attempts=1,
            idempotency_key=f"{parent.id}:compare_accounts:{index}",
            started_at=now,
            finished_at=now + timedelta(seconds=1) if status == "completed" else None,
        )
    return parent, [bank, cards, payroll, fx]


@pytest.fixture
def web(live_web_factory):
    return live_web_factory(STUDIOX_LIVE_POLL_SECONDS="0.2")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_tree_and_the_map_progress_show_without_overflowing_the_page(
    requester, web, browser, width
):
    parent, (bank, cards, payroll, fx) = reconciliation(requester)
    context = browser.new_context(base_url=web.url, viewport={"width": width, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": session_cookie(requester), "url": web.url}])
    page = context.new_page()
    page.goto(f"/missions/{parent.id}/")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=30_000)

    tree = page.locator(TREE)
    assert tree.is_visible()
    for child in (bank, cards, payroll, fx):
        assert page.locator(f'{TREE} li[data-mission-id="{child.id}"]').is_visible()
    nested = page.locator(f'{TREE} li[data-mission-id="{bank.id}"] li[data-mission-id="{fx.id}"]')
    assert nested.count() == 1
    assert page.get_attribute(f'{TREE} li[data-mission-id="{payroll.id}"]', "data-status") == (
        "succeeded"
    )
    progress = page.locator('[data-map-step="compare_accounts"]')
    assert progress.get_by_text("7 of 12 done").is_visible()
    assert progress.locator('[data-item-status="completed"]').count() == 7
    assert page.evaluate(OVERFLOW) <= 0, "the page scrolls sideways"

    # The rail follows a child: its line arrives live, labelled with it.
    record(bank, "Compared Bank with the general ledger: 3 differences")
    line = page.locator("#mission-observations li", has_text="Compared Bank with the general")
    line.wait_for(timeout=30_000)
    assert "Bank reconciliation" in line.inner_text()
    assert page.evaluate(OVERFLOW) <= 0
    context.close()


def test_a_child_page_links_back_to_its_parent(requester, web, browser):
    parent, (bank, *_rest) = reconciliation(requester)
    context = browser.new_context(base_url=web.url, viewport={"width": 390, "height": 800})
    context.add_cookies([{"name": "sessionid", "value": session_cookie(requester), "url": web.url}])
    page = context.new_page()
    page.goto(f"/missions/{bank.id}/")
    page.locator('[data-testid="parent-mission"]').get_by_role("link").click()
    page.wait_for_url(f"**/missions/{parent.id}/")
    assert page.locator(TREE).is_visible()
    context.close()
