"""In Chromium against uvicorn: the top bar's count of pending decisions follows a decision
opening and being decided, on a page that is not the queue, without a reload."""

import pytest
from playwright.sync_api import expect

from decisions.live import hints_flush
from decisions.services import decision_decide
from tests.browser.test_decision_queue_browser import MARK_PAGE, SAME_PAGE, wait_for_frames
from tests.conftest import make_user
from tests.support.decisions import open_decision

# A push from this process reaches the web server only over a shared (Redis) channel layer;
# on the in-memory layer the badge catches up by its 30 s poll instead.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.production,
    pytest.mark.django_db(transaction=True),
]


def test_the_badge_counts_up_and_down_live(live_web, browser, sign_in):
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    colleague = make_user("colleague", "supervisor")
    page = browser.new_page(base_url=live_web.url)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    sign_in(page, "supervisor", "pw-supervisor", next="/missions/")
    badge = page.locator("#pending-count")
    expect(badge).to_be_hidden()
    page.evaluate(MARK_PAGE)
    wait_for_frames(page, frames, '{"type": "refresh"}')  # joined the role's group

    decision = open_decision(requester, "Approve A-1")
    hints_flush()
    expect(badge).to_have_text("1 (1 pending)", timeout=10_000)
    expect(badge).to_be_visible()
    expect(page.get_by_role("link", name="Decision Queue (1 pending)")).to_be_visible()

    decision_decide(decision=decision, user=colleague, outcome="approved")
    hints_flush()
    expect(badge).to_be_hidden(timeout=10_000)
    assert page.evaluate(SAME_PAGE), "updated in place, no reload"
