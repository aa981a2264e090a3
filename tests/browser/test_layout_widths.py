"""In Chromium, against uvicorn: the pages people use fit a phone (390 x 844) and a desktop
(1280 x 800): the page itself never scrolls sideways, a wide table scrolls inside its own
box, and every link of the top bar is on screen and works. The dark colour scheme is
followed."""

import re

import pytest
from django.utils import timezone

from decisions.waits import decision_open
from missions.models import Mission, Step
from observations.services import observation_record
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Long enough that a table with it cannot fit 390 px without scrolling inside its box.
LONG_TITLE = "Refund 1,234.56 EUR for order A-1004-EXTRAORDINARILY-LONG-ORDER-REFERENCE-0042"

PAGE_OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
# Each table: how far it reaches past the window, and whether its box scrolls it.
TABLES = """() => [...document.querySelectorAll('main table')].map(table => {
  const box = table.closest('.scroll-box');
  return {
    inBox: !!box,
    boxRight: box ? box.getBoundingClientRect().right : table.getBoundingClientRect().right,
    scrolls: !!box && box.scrollWidth > box.clientWidth
      && getComputedStyle(box).overflowX === 'auto',
  };
})"""


@pytest.fixture
def mission_with_a_decision(db):
    """A waiting mission, its pending supervisor decision, a step and a rail line: something
    in every table of the queue, the mission list, the mission page and the rail."""
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    mission = Mission.objects.create(
        type="test_approval",
        version=1,
        title=LONG_TITLE,
        started_by=requester,
        status=Mission.Status.WAITING,
        current_step="approval",
    )
    Step.objects.create(
        mission=mission, name="lookup", position=1, status=Step.Status.COMPLETED,
        result={"order": "A-1004"}, started_at=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip
    observation_record(mission=mission, kind="step_completed", message=f"Looked up {LONG_TITLE}")
    decision = decision_open(
        mission=mission,
        step_name="approval",
        role="supervisor",
        title=LONG_TITLE,
        summary="",
        context={"amount": "1,234.56 EUR"},
        options=["approved", "rejected"],
        due_at=None,
    )
    return mission, decision


def open_signed_in(browser, live_web, sign_in, viewport: dict):
    page = browser.new_page(base_url=live_web.url, viewport=viewport)
    sign_in(page, "supervisor", "pw-supervisor", next="/decisions/")
    return page


def pages_of(mission, decision) -> list[str]:
    return ["/", "/decisions/", f"/decisions/{decision.id}/", "/missions/",
            f"/missions/{mission.id}/", "/rail/", "/refunds/new/"]  # fmt: skip


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_page_scrolls_sideways_and_tables_scroll_in_their_box(
    viewport, mission_with_a_decision, live_web, browser, sign_in
):
    mission, decision = mission_with_a_decision
    page = open_signed_in(browser, live_web, sign_in, viewport)
    for path in pages_of(mission, decision):
        page.goto(path)
        assert page.evaluate(PAGE_OVERFLOW) <= 0, f"{path} scrolls sideways at {viewport}"
        for table in page.evaluate(TABLES):
            assert table["inBox"], f"a table of {path} is not in a scrolling box"
            assert table["boxRight"] <= viewport["width"], f"a table's box overflows {path}"
    if viewport is PHONE:  # the queue's long title cannot fit: its box scrolls, not the page
        page.goto("/decisions/")
        assert any(table["scrolls"] for table in page.evaluate(TABLES))


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_top_bar_is_usable(viewport, mission_with_a_decision, live_web, browser, sign_in):
    page = open_signed_in(browser, live_web, sign_in, viewport)
    nav = page.get_by_role("navigation", name="Main")
    # The queue's link may carry a count of pending decisions after its name.
    names = [re.compile(r"^Decision Queue"), "Missions", "Rail", "Start a refund", "API docs"]
    for name in names:
        link = nav.get_by_role("link", name=name, exact=isinstance(name, str))
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], name
    log_out = page.get_by_role("button", name="Log out").bounding_box()
    assert log_out["x"] + log_out["width"] <= viewport["width"]
    nav.get_by_role("link", name="Start a refund").click()
    page.wait_for_url("**/refunds/new/")
    nav.get_by_role("link", name="Missions", exact=True).click()
    page.wait_for_url("**/missions/")


def test_the_dark_colour_scheme_is_followed(mission_with_a_decision, live_web, browser, sign_in):
    page = open_signed_in(browser, live_web, sign_in, PHONE)
    background = "getComputedStyle(document.body).backgroundColor"
    text = "getComputedStyle(document.body).color"
    page.emulate_media(color_scheme="light")
    light = page.evaluate(background), page.evaluate(text)
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate(background), page.evaluate(text)
    assert light != dark
    assert luminance(dark[0]) < luminance(dark[1]), "dark: light text on a dark background"
    assert luminance(light[0]) > luminance(light[1])


def luminance(css_rgb: str) -> float:
    red, green, blue = (int(part) for part in css_rgb[css_rgb.index("(") + 1 : -1].split(",")[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
