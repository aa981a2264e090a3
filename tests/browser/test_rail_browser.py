"""In Chromium: a mission's page and the rail update live while a real worker advances it."""

import pytest

from missions.services import mission_start
from tests.support.pages import session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

RAIL_MISSIONS = "tests.missions_for_tests,tests.missions_for_rail"

# Records every status the page shows, so the test sees the states it passed through
# without reloading it (a reload would reset `window.__seen`).
WATCH_STATUS = """
window.__seen = [];
const note = () => {
  const badge = document.querySelector('[data-testid="mission-status"]');
  if (badge && window.__seen[window.__seen.length - 1] !== badge.textContent)
    window.__seen.push(badge.textContent);
};
new MutationObserver(note).observe(
  document.body, {subtree: true, childList: true, characterData: true});
note();
"""


@pytest.fixture
def web(live_web_factory):
    return live_web_factory(STUDIOX_MISSION_MODULES=RAIL_MISSIONS, STUDIOX_LIVE_POLL_SECONDS="0.2")


def logged_in_page(browser, web, user):
    context = browser.new_context(base_url=web.url)
    context.add_cookies([{"name": "sessionid", "value": session_cookie(user), "url": web.url}])
    return context.new_page()


def test_a_mission_page_follows_a_real_worker_live(admin_user, web, browser, processes):
    import tests.missions_for_rail  # noqa: F401  (registers the mission in this process)

    mission = mission_start(
        type="rail_briefing", input={"pause_seconds": 2}, started_by=admin_user
    ).mission
    page = logged_in_page(browser, web, admin_user)
    page.goto(f"/missions/{mission.id}/")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=30_000)
    assert page.inner_text('[data-testid="mission-status"]') == "Pending"
    page.evaluate(WATCH_STATUS)

    env = {"STUDIOX_MISSION_MODULES": RAIL_MISSIONS}
    processes.worker(**env)
    processes.scheduler(**env)

    page.wait_for_selector('[data-testid="mission-status"]:text-is("Succeeded")', timeout=90_000)
    seen = page.evaluate("window.__seen")
    assert "Waiting" in seen, seen  # the two-second timer showed while it lasted
    assert seen[-1] == "Succeeded"
    lines = page.inner_text("#mission-observations")
    assert "Gathered 3 facts about Quarterly figures" in lines
    assert "Waiting for timer" in lines
    assert page.inner_text('[data-testid="verdict"]').count("3 facts reviewed") == 1
    # Each business line shows once, however many pushes and polls carried it.
    seqs = page.eval_on_selector_all(
        "#mission-observations li", "els => els.map(e => e.dataset.seq)"
    )
    assert len(seqs) == len(set(seqs)) == mission.observations.business().count()


def test_the_rail_shows_a_new_mission_and_drops_it_when_it_finishes(
    admin_user, web, browser, processes
):
    import tests.missions_for_rail  # noqa: F401

    page = logged_in_page(browser, web, admin_user)
    page.goto("/rail/")
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=30_000)
    mission = mission_start(
        type="rail_briefing", input={"pause_seconds": 2}, started_by=admin_user
    ).mission
    env = {"STUDIOX_MISSION_MODULES": RAIL_MISSIONS}
    processes.worker(**env)
    processes.scheduler(**env)

    row = f'tr[data-mission="{mission.id}"]'
    page.wait_for_selector(f"{row}:has-text('cool_down')", timeout=60_000)
    assert "Timer" in page.inner_text(row)
    page.wait_for_selector(
        "#rail-feed li:has-text('Gathered 3 facts about Quarterly figures')", timeout=60_000
    )
    page.wait_for_selector(row, state="detached", timeout=90_000)
    assert "Briefing" in page.inner_text("#rail-feed")
