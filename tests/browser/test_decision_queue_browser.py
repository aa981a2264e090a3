"""In Chromium: a supervisor signs in, sees a new decision arrive, approves it with a
comment, and the mission (advanced by a real worker) resumes to its verdict."""

from pathlib import Path

import pytest

from missions.models import Mission
from missions.services import mission_start
from tests.conftest import make_user, require
from tests.live_rail import BROWSER_ARGS, CHROMIUM, WebServer
from tests.workers import eventually

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chromium(monkeypatch):
    require(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM runs between page calls
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_a_supervisor_approves_a_new_decision_and_the_mission_resumes(
    tmp_path, processes, chromium
):
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    web = WebServer(tmp_path).start()
    try:
        processes.worker()
        page = chromium.new_page(base_url=web.url)
        page.goto("/accounts/login/?next=/decisions/")
        page.get_by_label("Username").fill("supervisor")
        page.get_by_label("Password").fill("pw-supervisor")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/decisions/")
        assert page.get_by_text("no decision waits on your roles").is_visible()

        mission = mission_start(
            type="test_approval", input={"amount": "75"}, started_by=requester
        ).mission
        # No reload: the list refreshes itself when the decision opens.
        link = page.get_by_role("link", name="Approve 75")
        link.wait_for(timeout=30_000)
        link.click()
        page.get_by_label("Comment").fill("Looks right to me")
        page.get_by_role("button", name="Approve", exact=True).click()
        page.get_by_text("You approved this decision").wait_for(timeout=10_000)

        def verdict():
            return Mission.objects.get(id=mission.id).verdict

        result = eventually(verdict, what="the mission's verdict after approval")
        assert result == {"outcome": "approved", "by": "supervisor", "comment": "Looks right to me"}
    finally:
        web.stop()
