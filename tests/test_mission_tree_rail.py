"""A parent's rail tells its children's story too: the mission page's observations and its live
stream (ws/missions/<uuid>/) carry the lines of every descendant the reader may see, each
labelled with its mission, as one sequence that a reader catches up on from any number."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from decisions.models import Decision
from missions.models import Mission
from tests.support.pages import logged_in, session_cookie
from tests.support.rail import (  # noqa: F401 - an autouse fixture
    arecord,
    expect_ready,
    frames_until,
    mission_for,
    reader,
    readers_let_go_of_the_database,
    record,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)


def child_of(parent: Mission, title: str) -> Mission:
    return mission_for(parent.started_by, title=title, parent=parent, parent_step=f"start:{title}")


achild_of = database_sync_to_async(child_of)


@pytest.fixture
def family(requester):
    parent = mission_for(requester, title="Month-end close")
    bank = child_of(parent, "Bank reconciliation")
    fx = child_of(bank, "FX revaluation")
    return parent, bank, fx


def feed(text: str) -> str:
    start = text.index('id="mission-observations"')
    return text[start : text.index("</ol>", start)]


def test_the_parent_page_shows_its_descendants_lines_labelled_with_them(requester, family):
    parent, bank, fx = family
    record(parent, "Started the month-end close")
    record(bank, "Compared Bank with the general ledger: 3 differences")
    record(fx, "Revalued 4 currencies")
    text = logged_in(requester).get(reverse("missions:detail", args=[parent.id])).text
    lines = feed(text).split("</li>")
    bank_line = next(line for line in lines if "Compared Bank" in line)
    assert "Bank reconciliation" in bank_line
    assert reverse("missions:detail", args=[bank.id]) in bank_line
    fx_line = next(line for line in lines if "Revalued 4 currencies" in line)
    assert "FX revaluation" in fx_line  # a grandchild's line too
    own = next(line for line in lines if "Started the month-end close" in line)
    assert "obs-mission" not in own  # the page's own lines carry no label
    last = fx.observations.get().seq
    assert f'data-live-stream="/ws/missions/{parent.id}/" data-after="{last}"' in text


def test_a_child_page_shows_its_own_lines_not_its_parents(requester, family):
    parent, bank, _fx = family
    record(parent, "Started the month-end close")
    record(bank, "Compared Bank with the general ledger")
    text = logged_in(requester).get(reverse("missions:detail", args=[bank.id])).text
    assert "Compared Bank" in feed(text)
    assert "Started the month-end close" not in feed(text)


def test_lines_of_a_child_the_reader_may_not_see_stay_off_the_parents_rail(requester, supervisor):
    parent = mission_for(requester, title="Refund batch")
    seen = child_of(parent, "Refund A-1")
    unseen = child_of(parent, "Refund A-2")
    role = supervisor.groups.get()
    for target in (parent, seen):
        Decision.objects.create(mission=target, step_name="approve", role=role, title="Approve")
    record(seen, "Refund A-1 checked")
    hidden = record(unseen, "Refund A-2 checked")
    text = logged_in(supervisor).get(reverse("missions:detail", args=[parent.id])).text
    assert "Refund A-1 checked" in feed(text)
    assert "Refund A-2 checked" not in feed(text)

    cookie = session_cookie(supervisor)

    async def body():
        communicator = reader(f"/ws/missions/{parent.id}/?after=0", cookie)
        await expect_ready(communicator)
        late = await arecord(seen, "Refund A-1 approved")
        received = await frames_until(communicator, lambda p: p["seq"] == late.seq)
        await communicator.disconnect()
        return received

    received = run(body)
    assert hidden.seq not in {p["seq"] for p in received}
    assert {p["mission_id"] for p in received} == {str(seen.id)}


def test_the_stream_catches_up_across_parent_and_children_from_a_sequence_number(
    requester, family, slow_polls
):
    parent, bank, fx = family
    first = record(parent, "Started the month-end close")
    rest = [
        record(bank, "Compared Bank with the general ledger"),
        record(parent, "Waiting for the reconciliations"),
        record(fx, "Revalued 4 currencies"),
        record(bank, "Bank reconciled"),
    ]
    other = record(mission_for(requester, title="Unrelated"), "Not in this family")

    cookie = session_cookie(requester)

    async def body():
        path = f"/ws/missions/{parent.id}/?after={first.seq}"
        communicator = reader(path, cookie)
        assert await expect_ready(communicator) == first.seq
        received = await frames_until(communicator, lambda p: p["seq"] == rest[-1].seq)
        await communicator.disconnect()
        return received

    received = run(body)
    assert [p["seq"] for p in received] == [o.seq for o in rest]
    assert other.seq not in [p["seq"] for p in received]
    assert [p["mission_title"] for p in received] == [
        "Bank reconciliation",
        "Month-end close",
        "FX revaluation",
        "Bank reconciliation",
    ]
    # The lines as the page inserts them: a child's labelled with it, the parent's own not.
    assert "Bank reconciliation" in received[0]["html"]
    assert "obs-mission" not in received[1]["html"]


def test_a_childs_line_is_pushed_to_the_parents_reader(requester, family, slow_polls):
    parent, _bank, fx = family
    before = record(parent, "Started the month-end close")
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{parent.id}/?after=0", cookie)
        await expect_ready(communicator)
        # The first poll brought this; the next one is an hour away: only a push is in time.
        await frames_until(communicator, lambda p: p["seq"] == before.seq)
        pushed = await arecord(fx, "Revalued 4 currencies")
        received = await frames_until(communicator, lambda p: p["seq"] == pushed.seq)
        await communicator.disconnect()
        return received, pushed

    received, pushed = run(body)
    (line,) = [p for p in received if p["seq"] == pushed.seq]
    assert line["mission_title"] == "FX revaluation"


def test_a_child_started_after_the_reader_connected_joins_the_stream(requester, family, fast_polls):
    parent, bank, _fx = family

    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{parent.id}/", cookie)
        await expect_ready(communicator)
        newcomer = await achild_of(bank, "Card reconciliation")
        line = await arecord(newcomer, "Matched 12 card payments")
        received = await frames_until(communicator, lambda p: p["seq"] == line.seq)
        await communicator.disconnect()
        return received, line

    received, line = run(body)
    (got,) = [p for p in received if p["seq"] == line.seq]
    assert got["mission_title"] == "Card reconciliation"
