"""In Chromium, against uvicorn: every page works under the Content-Security-Policy and the
browser reports no violation (no blocked script, style, eval or WebSocket)."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from playwright.sync_api import expect

from decisions.models import Decision
from missions.models import Mission
from missions.services import mission_start
from tests.conftest import make_user
from tests.support.engine import drain, started

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

# Runs before any page script: every violation the browser reports lands on the console.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} (${e.sample})`));
"""


@pytest.fixture
def missions() -> tuple[Mission, Decision]:
    """A finished mission with a timeline and a pending decision, made before the browser
    starts (its event loop would stop the observations' live push)."""
    requester = make_user("requester")
    mission = drain(started(requester, steps=3))
    decided = drain(
        mission_start(type="test_approval", input={"amount": "80"}, started_by=requester).mission
    )
    return mission, Decision.objects.get(mission=decided)


@pytest.fixture
def page(live_web, browser, sign_in):
    make_user("admin", "supervisor", "finance", is_staff=True, is_superuser=True)
    context = browser.new_context(base_url=live_web.url)
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    page.violations = []

    def note_violation(message) -> None:
        if "Content Security Policy" in message.text or "CSP violation" in message.text:
            page.violations.append(message.text)

    page.on("console", note_violation)
    sign_in(page, "admin", "pw-admin")
    return page


def visit(page, url: str) -> None:
    """Open `url` under the policy and let its scripts, styles and requests settle."""
    response = page.goto(url)
    assert "script-src 'self'" in response.headers["content-security-policy"], url
    page.wait_for_load_state("networkidle")


def test_the_app_s_pages_run_without_a_violation(missions, page):
    mission, decision = missions
    visit(page, reverse("missions:detail", args=[mission.id]))
    # The live stream is a WebSocket: connect-src must let it open.
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=30_000)
    bar = page.locator(".gantt-bar").first
    placed = bar.evaluate("b => [parseFloat(b.style.left), parseFloat(b.style.width)]")
    assert placed == [float(bar.get_attribute(f"data-bar-{side}")) for side in ("left", "width")]
    assert bar.bounding_box()["width"] > 0

    for url in (
        "/",
        reverse("missions:list"),
        reverse("observations:rail"),
        reverse("decisions:queue"),
        reverse("decisions:detail", args=[decision.id]),
        reverse("refund_new"),
    ):
        visit(page, url)
    visit(page, reverse("decisions:queue"))
    page.get_by_label("Sort").select_option(index=1)  # an htmx request, no eval needed
    page.wait_for_load_state("networkidle")
    assert page.violations == []


def test_the_admin_and_the_api_docs_run_without_a_violation(page):
    visit(page, "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("StudioX API")
    expect(page.locator(".opblock").first).to_be_visible()

    for url in (
        reverse("admin:index"),
        reverse("admin:observations_observation_changelist"),
        reverse("admin:missions_mission_changelist"),
        reverse("admin:studiox_apitoken_add"),
        reverse("admin:knowledge_document_import"),
    ):
        visit(page, url)
    # A form with the admin's own widgets (permission pickers, date and time shortcuts).
    admin_user = User.objects.get(username="admin")
    visit(page, reverse("admin:auth_user_change", args=[admin_user.pk]))
    expect(page.locator("#id_user_permissions_filter")).to_be_visible()
    assert page.violations == []
