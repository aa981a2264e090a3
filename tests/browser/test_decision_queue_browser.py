"""In Chromium, against uvicorn and a real Celery worker: a supervisor signs in, sees a new
decision arrive without reloading, approves it with a comment, and the mission resumes to its
verdict; a late approver is told who decided first."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from decisions.models import Decision
from decisions.services import decision_decide
from missions.models import Mission
from missions.services import mission_start
from tests.conftest import make_user
from tests.support.decisions import open_decision
from tests.support.processes import eventually

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Set once after the page loaded; a full reload would drop it.
MARK_PAGE = "window.__sameDocument = true"
SAME_PAGE = "window.__sameDocument === true"


def wait_for_frames(page, frames: list, text: str, attempts: int = 300) -> None:
    """Until a WebSocket frame containing `text` arrived; Playwright records frames while
    the page waits (wait_for_timeout), not during time.sleep()."""
    for _ in range(attempts):
        if any(text in str(frame) for frame in frames):
            return
        page.wait_for_timeout(100)
    pytest.fail(f"no WebSocket frame with {text} among {frames}")


def test_a_supervisor_approves_a_new_decision_and_the_mission_resumes(
    live_web, live_worker, browser, sign_in
):
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    page = browser.new_page(base_url=live_web.url)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    sign_in(page, "supervisor", "pw-supervisor", next="/decisions/")
    assert page.get_by_text("no decision waits on your roles").is_visible()
    page.evaluate(MARK_PAGE)
    # The consumer greets once it joined the role's group; a hint sent before that is lost
    # by design (the greeting's refresh heals it), so only then does the decision open.
    wait_for_frames(page, frames, '{"type": "refresh"}')

    # tests.missions_for_tests (STUDIOX_MISSION_MODULES) registers test_approval in the worker.
    mission = mission_start(type="test_approval", input={"amount": "75"}, started_by=requester)
    link = page.get_by_role("link", name="Approve 75")
    link.wait_for(timeout=30_000)  # pushed (Redis) or polled (in-memory layer), no reload
    assert page.evaluate(SAME_PAGE)
    # The live region and the tab's count follow once htmx settled the new list.
    expect(page.get_by_role("status")).to_have_text("1 decision in My queue.")
    expect(page.locator('[data-count="queue"]')).to_have_text("1")
    if settings.CHANNEL_LAYER_URL.startswith("redis"):
        # A shared layer carries the worker's hint to the page (in memory, only polls can).
        hint = f'"decision": {Decision.objects.get(mission=mission.mission).id}, "change": "opened"'
        wait_for_frames(page, frames, hint)

    link.click()
    assert "Waiting for supervisor decision" in page.inner_text("main")  # the mission's rail
    page.evaluate(MARK_PAGE)
    page.get_by_label("Comment").fill("Looks right to me")
    page.get_by_role("button", name="Approve", exact=True).click()
    answer = page.get_by_text("You approved this decision")
    answer.wait_for(timeout=10_000)
    assert page.evaluate(SAME_PAGE), "the answer replaced the form without a page load"
    assert page.get_by_role("button", name="Approve", exact=True).count() == 0
    expect(page.locator("#actions [data-autofocus]")).to_be_focused()  # focus on the answer
    expect(page.locator("#decision-status")).to_have_text("Approved")  # swapped out of band
    expect(page.locator("#audit")).to_contain_text("Looks right to me")

    def verdict():
        return Mission.objects.get(id=mission.mission.id).verdict

    result = eventually(verdict, what="the mission's verdict after approval")
    assert result == {"outcome": "approved", "by": "supervisor", "comment": "Looks right to me"}


def a_decision_for_supervisors(title: str, amount: str) -> Decision:
    """A pending supervisor decision on a bare mission row: deciding it wakes nothing, so no
    worker is needed. The users `supervisor` and `alice` may both decide it."""
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    make_user("alice", "supervisor")
    return open_decision(requester, title, context={"amount": amount})


def test_a_late_approver_is_told_who_decided_first(live_web, browser, sign_in):
    decision = a_decision_for_supervisors("Refund 30.00 EUR for A-9", "30.00 EUR")
    alice = User.objects.get(username="alice")
    page = browser.new_page(base_url=live_web.url)
    # A page that has not heard yet: its live updates (a push, the 10 s check) are held back,
    # so the click below races alice as a slow network would let it.
    page.route_web_socket("**/ws/decisions/", lambda socket: None)
    page.route("**/*seen=*", lambda route: route.abort())
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    page.evaluate(MARK_PAGE)

    decision_decide(decision=decision, user=alice, outcome="rejected", comment="duplicate")
    page.get_by_role("button", name="Approve", exact=True).click()
    page.get_by_role("alert").wait_for(timeout=10_000)
    assert page.get_by_role("alert").inner_text().startswith("Already rejected by alice at ")
    assert page.evaluate(SAME_PAGE)
    assert "Rejected by alice" in page.inner_text("#actions")
    assert Decision.objects.get(id=decision.id).decided_by_name == "alice"


def test_an_open_decision_page_follows_a_colleagues_decision(live_web, browser, sign_in):
    decision = a_decision_for_supervisors("Refund 45.00 EUR for A-10", "45.00 EUR")
    alice = User.objects.get(username="alice")
    page = browser.new_page(base_url=live_web.url)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    page.evaluate(MARK_PAGE)
    wait_for_frames(page, frames, '{"type": "refresh"}')  # joined the role's group
    page.get_by_label("Comment").fill("half-written")

    decision_decide(decision=decision, user=alice, outcome="rejected", comment="duplicate")
    # Pushed with Redis; on the in-memory layer (another process decided) the 10 s check.
    note = page.get_by_text("This decision changed while you had it open.")
    note.wait_for(timeout=20_000)
    assert page.evaluate(SAME_PAGE), "updated in place, no reload"
    assert "Rejected by alice" in page.inner_text("#actions")
    assert page.get_by_role("button", name="Approve", exact=True).count() == 0
    expect(page.locator("#decision-status")).to_have_text("Rejected")
