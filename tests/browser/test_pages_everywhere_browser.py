"""In Chromium, against uvicorn: the small things every page gets right. A favicon (also at
/favicon.ico), a login link that never sends people back to the login page, and a comment
being typed on a decision that survives a colleague's decision landing: shown, unsent, beside
the new state."""

import pytest
from django.contrib.auth.models import User

from decisions.services import decision_decide
from tests.conftest import make_user
from tests.support.decisions import open_decision

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

TYPED = "Half-written: the parcel photo shows"
BADGE_REFRESHED_AND_SETTLED = """() => {
  window.badgeSettled = false;
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target.id === "pending-count") { window.badgeSettled = true; }
  });
  htmx.trigger(document.getElementById("pending-count"), "refresh");
}"""


def a_pending_decision():
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    make_user("alice", "supervisor")
    return open_decision(requester, "Refund 45.00 EUR for A-10", context={"amount": "45.00 EUR"})


def test_a_comment_being_typed_survives_a_colleagues_decision(live_web, browser, sign_in):
    decision = a_pending_decision()
    page = browser.new_page(base_url=live_web.url)
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    page.get_by_label("Comment").fill(TYPED)

    alice = User.objects.get(username="alice")
    decision_decide(decision=decision, user=alice, outcome="rejected", comment="duplicate")
    # Pushed with Redis; on the in-memory layer (another process decided) the 10 s check.
    page.get_by_text("This decision changed while you had it open.").wait_for(timeout=20_000)
    assert "Rejected by alice" in page.inner_text("#actions")
    kept = page.get_by_label("Your comment, not sent:")
    assert kept.input_value() == TYPED
    assert not kept.is_editable(), "shown to copy, not a form that could still be sent"


def test_a_comment_typed_while_the_cards_check_is_on_its_way_survives_its_answer(
    live_web, browser, sign_in
):
    """The card checks itself when its socket connects. Typed while that check is on its way,
    and decided by a colleague before it is answered, the comment must not be lost: the
    answer brings the decided card, and the words are those typed by then."""
    decision = a_pending_decision()
    check_url = f"/decisions/{decision.id}/?seen="
    page = browser.new_page(base_url=live_web.url)
    held_checks = []

    def hold_the_first(route) -> None:
        if held_checks:
            route.continue_()
        else:
            held_checks.append(route)

    page.route(lambda url: check_url in url, hold_the_first)
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    for _ in range(400):  # the check of the socket's first message
        if held_checks:
            break
        page.wait_for_timeout(100)
    assert held_checks, "the card never checked itself when its socket connected"
    page.get_by_label("Comment").fill(TYPED)
    alice = User.objects.get(username="alice")
    decision_decide(decision=decision, user=alice, outcome="rejected", comment="duplicate")
    held_checks[0].continue_()

    page.get_by_text("This decision changed while you had it open.").wait_for(timeout=10_000)
    assert page.get_by_label("Your comment, not sent:").input_value() == TYPED


def test_the_top_bars_badge_refreshing_meanwhile_does_not_drop_the_comment(
    live_web, browser, sign_in
):
    """The same live hint refreshes the pending count and the card: the badge's answer can
    settle while the card's check is still on its way, and must not take the comment."""
    decision = a_pending_decision()
    check_url = f"/decisions/{decision.id}/?seen="
    page = browser.new_page(base_url=live_web.url)
    started, ended = [], []
    page.on("request", lambda request: check_url in request.url and started.append(request))
    for done in ("requestfinished", "requestfailed"):
        page.on(done, lambda request: check_url in request.url and ended.append(request))
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    page.get_by_label("Comment").fill(TYPED)
    # The socket's first message has the card check once: a check still on its way when the
    # decision lands would bring the new card itself, and none would be left to hold.
    for _ in range(400):
        if ended and len(ended) == len(started):
            break
        page.wait_for_timeout(100)
    assert ended and len(ended) == len(started), "the page never settled after opening"
    held_checks = []
    page.route(lambda url: check_url in url, lambda route: held_checks.append(route))

    alice = User.objects.get(username="alice")
    decision_decide(decision=decision, user=alice, outcome="rejected", comment="duplicate")
    for _ in range(400):  # the push with Redis, else the card's 10 s check (a busy machine)
        if held_checks:
            break
        page.wait_for_timeout(100)
    assert held_checks, "the card never asked whether the decision changed"
    page.evaluate(BADGE_REFRESHED_AND_SETTLED)
    page.wait_for_function("() => window.badgeSettled === true")
    held_checks[0].continue_()

    page.get_by_text("This decision changed while you had it open.").wait_for(timeout=10_000)
    assert page.get_by_label("Your comment, not sent:").input_value() == TYPED


def test_a_comment_sent_with_ones_own_decision_is_not_shown_as_unsent(live_web, browser, sign_in):
    decision = a_pending_decision()
    page = browser.new_page(base_url=live_web.url)
    sign_in(page, "supervisor", "pw-supervisor", next=f"/decisions/{decision.id}/")
    page.get_by_label("Comment").fill(TYPED)
    page.get_by_role("button", name="Approve", exact=True).click()
    page.get_by_text("You approved this decision").wait_for(timeout=10_000)
    assert page.locator(".unsent-comment").count() == 0


def test_favicon_and_the_login_link(live_web, browser):
    page = browser.new_page(base_url=live_web.url)
    page.goto("/")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(icon).ok
    answer = page.request.get("/favicon.ico")  # redirected to the same icon
    assert answer.ok and answer.headers["content-type"].startswith("image/svg+xml")

    top_bar_log_in = page.get_by_role("banner").get_by_role("link", name="Log in")
    assert top_bar_log_in.get_attribute("href").endswith("?next=/")
    page.goto("/accounts/login/?next=/decisions/")
    href = top_bar_log_in.get_attribute("href")
    assert "next=/accounts/login" not in href and "next=%2Faccounts%2Flogin" not in href
