"""In Chromium, against uvicorn: a line the live stream brings is the line the server renders,
and a page whose WebSocket dropped catches up from the last line it holds, or stops for good
when the server says it is signed out."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from playwright.sync_api import expect

from missions.models import Mission
from observations.models import Observation
from observations.services import observation_record
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

RAIL_SOCKET = re.compile(r"/ws/rail/")
LIVE = '[data-live-status][data-state="live"]'

# A line as a reader sees it: its markup without the arrival highlight, whitespace collapsed.
LINE_SHAPE = """li => {
  const copy = li.cloneNode(true);
  copy.classList.remove("fresh");
  return copy.outerHTML.replace(/\\s+/g, " ").replace(/> </g, "><");
}"""


def note(mission: Mission, message: str, step_name: str = "") -> Observation:
    """Committed in a thread of its own: the push that follows the commit cannot run in this
    one, where Playwright's event loop runs."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_record, mission, message, step_name).result()


def _record(mission: Mission, message: str, step_name: str) -> Observation:
    try:
        with transaction.atomic():
            return observation_record(
                mission=mission, kind="step", message=message, step_name=step_name
            )
    finally:
        connection.close()


@pytest.fixture
def mission() -> Mission:
    admin = make_user("admin", is_staff=True, is_superuser=True)
    return Mission.objects.create(
        type="test_count", version=1, title="Counting", input={}, started_by=admin, status="running"
    )


@pytest.fixture
def rail(live_web, browser, sign_in):
    """The rail page, signed in, its WebSockets passing through a proxy the test can cut."""
    page = browser.new_page(base_url=live_web.url)
    page.sockets = []

    def through_proxy(socket) -> None:
        server = socket.connect_to_server()
        page.sockets.append((socket, server))

    page.route_web_socket(RAIL_SOCKET, through_proxy)
    sign_in(page, "admin", "pw-admin", next="/rail/")
    page.wait_for_selector(LIVE, timeout=30_000)
    return page


def cut(page) -> None:
    """Drop the page's live connection as a network failure would (no final close code)."""
    socket, server = page.sockets[-1]
    server.close()
    socket.close(code=1011, reason="gone")  # "the server failed": worth trying again


def test_a_live_line_is_the_line_the_server_renders(mission, rail):
    seq = note(mission, "Fetched the order", step_name="fetch").id
    live = rail.locator(f'#rail-feed li[data-seq="{seq}"]')
    live.wait_for(timeout=30_000)
    pushed = live.evaluate(LINE_SHAPE)

    rail.reload()
    rendered = rail.locator(f'#rail-feed li[data-seq="{seq}"]').evaluate(LINE_SHAPE)
    assert pushed == rendered
    assert "Counting" in rendered and "fetch" in rendered and 'href="/missions/' in rendered


def test_a_line_without_a_step_has_no_step(mission, rail):
    seq = note(mission, "Started").id
    live = rail.locator(f'#rail-feed li[data-seq="{seq}"]')
    live.wait_for(timeout=30_000)
    assert live.locator(".obs-step").count() == 0
    expect(live.locator(".obs-message")).to_have_text("Started")


def test_after_a_reconnect_the_page_catches_up_from_its_last_line(mission, rail):
    held = note(mission, "Before the cut").id
    rail.locator(f'#rail-feed li[data-seq="{held}"]').wait_for(timeout=30_000)

    cut(rail)
    expect(rail.locator("[data-live-status]")).to_have_text("Reconnecting…")
    missed = note(mission, "While the page was away").id  # no connection could carry it
    rail.wait_for_selector(LIVE, timeout=30_000)

    assert len(rail.sockets) == 2
    assert rail.sockets[-1][0].url.endswith(f"?after={held}")
    rail.locator(f'#rail-feed li[data-seq="{missed}"]').wait_for(timeout=30_000)
    seqs = rail.eval_on_selector_all(
        "#rail-feed li[data-seq]", "els => els.map(e => e.dataset.seq)"
    )
    assert len(seqs) == len(set(seqs))


def test_a_page_signed_out_elsewhere_stops_reconnecting(mission, rail):
    rail.context.clear_cookies()  # signed out: the next handshake is refused with 4401
    cut(rail)
    expect(rail.locator("[data-live-status]")).to_have_text("Log in again to follow live updates.")
    expect(rail.locator("[data-live-status]")).to_have_attribute("data-state", "stopped")
    rail.wait_for_timeout(2500)  # longer than the first two reconnect delays
    assert len(rail.sockets) == 2


def test_an_operator_s_cancel_asks_first(mission, live_web, browser, sign_in):
    page = browser.new_page(base_url=live_web.url)
    sign_in(page, "admin", "pw-admin", next=f"/missions/{mission.id}/")
    posts, questions = [], []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    cancel = page.get_by_role("button", name="Cancel mission")

    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    cancel.click()
    page.once("dialog", lambda dialog: dialog.accept())
    cancel.click()

    expect(page.get_by_test_id("mission-status")).to_have_text("Cancelled")
    assert questions == ["Cancel this mission? Its pending decisions are withdrawn."]
    assert [url for url in posts if "/cancel/" in url] == [
        f"{live_web.url}/missions/{mission.id}/cancel/"
    ]
