"""A live stream's frames carry each line as the server renders it (observations.lines), the
same markup as the page's: live.js inserts it, it builds none of its own."""

import pytest
from django.template.loader import render_to_string

from observations.lines import observation_line_html
from observations.services import observation_payload
from tests.support.pages import session_cookie
from tests.support.rail import (  # noqa: F401 - an autouse fixture
    expect_ready,
    frames_until,
    mission_for,
    reader,
    readers_let_go_of_the_database,
    record,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)


def payload_of(observation, title: str) -> dict:
    return {**observation_payload(observation), "mission_title": title}


def test_a_live_line_is_the_line_the_page_renders(requester):
    mission = mission_for(requester, title="Counting")
    line = record(mission, "Policy checked")
    page = render_to_string("observations/_line.html", {"o": line, "show_mission": True})
    assert observation_line_html(payload_of(line, "Counting")) == page.strip()
    assert "Counting" in page and f"/missions/{mission.id}/" in page


def test_a_missions_own_lines_carry_no_mission_label_on_its_page(requester):
    mission = mission_for(requester, title="Counting")
    line = record(mission, "Policy checked")
    own = observation_line_html(payload_of(line, "Counting"), own_mission=str(mission.id))
    assert "Policy checked" in own and "obs-mission" not in own


def test_the_stream_sends_each_line_rendered_and_escaped(requester):
    mission = mission_for(requester, title="Counting")
    line = record(mission, "<b>Refund</b> issued")
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/rail/?after={line.seq - 1}", cookie)
        await expect_ready(communicator)
        received = await frames_until(communicator, lambda p: p["seq"] == line.seq)
        await communicator.disconnect()
        return received

    html = run(body)[-1]["html"]
    assert html.startswith(f'<li class="obs kind-note" data-seq="{line.seq}">')
    assert "&lt;b&gt;Refund&lt;/b&gt; issued" in html and "<b>" not in html
    assert "Counting" in html
