"""The queue page's three views: filters, sort, pagination, overdue in words, polls that find
nothing new, and a query count that does not grow with the rows."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from decisions.models import Decision
from decisions.services import decision_claim, decision_decide
from tests.conftest import make_user
from tests.support.decisions import open_decision
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def titles(html: str) -> list[str]:
    """Decision titles in list order (each row's link)."""
    return [part.split(">", 1)[1].split("<", 1)[0] for part in html.split('id="decision-link-')[1:]]


def test_overdue_decisions_are_flagged_in_words_and_can_be_filtered(requester, supervisor):
    open_decision(requester, "Late one", due_in=timedelta(hours=-1))
    open_decision(requester, "On time", due_in=timedelta(hours=5))
    client = logged_in(supervisor)
    html = client.get("/decisions/").content.decode()
    late_row = html.split("Late one")[1].split("</tr>")[0]
    assert "Overdue" in late_row
    assert "Overdue" not in html.split("On time")[1].split("</tr>")[0]
    assert "2 decisions in My queue, 1 overdue on this page." in html  # the live status line
    assert titles(client.get("/decisions/?overdue=1").content.decode()) == ["Late one"]


def test_sort_by_due_puts_undated_decisions_last_and_age_sorts_by_creation(requester, supervisor):
    open_decision(requester, "Undated")
    open_decision(requester, "Due later", due_in=timedelta(days=2))
    open_decision(requester, "Due soon", due_in=timedelta(hours=1))
    client = logged_in(supervisor)
    assert titles(client.get("/decisions/?sort=due").content.decode()) == [
        "Due soon",
        "Due later",
        "Undated",
    ]
    assert titles(client.get("/decisions/?sort=age").content.decode()) == [
        "Undated",
        "Due later",
        "Due soon",
    ]
    assert titles(client.get("/decisions/?sort=-age").content.decode())[0] == "Due soon"


def test_the_role_filter_narrows_to_one_of_my_roles(requester, admin_user):
    open_decision(requester, "For supervisors")
    open_decision(requester, "For finance", role="finance")
    client = logged_in(admin_user)
    assert sorted(titles(client.get("/decisions/").content.decode())) == [
        "For finance",
        "For supervisors",
    ]
    assert titles(client.get("/decisions/?role=finance").content.decode()) == ["For finance"]


def test_a_long_queue_is_paginated(requester, supervisor):
    for i in range(23):
        open_decision(requester, f"D{i:02}")
    client = logged_in(supervisor)
    first = client.get("/decisions/?sort=age").content.decode()
    assert len(titles(first)) == 20 and "Page 1 of 2 (23 decisions)" in first
    assert "page=2" in first and "known=" not in first.split('class="pagination"')[1]
    second = client.get("/decisions/?sort=age&page=2").content.decode()
    assert titles(second) == ["D20", "D21", "D22"]


def test_claimed_by_me_and_the_archive_show_my_own_work(requester, supervisor):
    claimed = open_decision(requester, "Mine for now")
    decided = open_decision(requester, "Done already")
    open_decision(requester, "Nobody yet")
    decision_claim(decision=claimed, user=supervisor)
    decision_decide(
        decision=decided, user=supervisor, outcome="rejected", comment="missing receipt"
    )
    client = logged_in(supervisor)
    assert titles(client.get("/decisions/?view=claimed").content.decode()) == ["Mine for now"]
    archive = client.get("/decisions/?view=archive").content.decode()
    assert titles(archive) == ["Done already"]
    assert "missing receipt" in archive and "Rejected" in archive
    queue = client.get("/decisions/").content.decode()
    assert sorted(titles(queue)) == ["Mine for now", "Nobody yet"]
    assert '(<span data-count="claimed">1</span>)' in queue


def test_a_poll_that_finds_nothing_new_gets_204_and_a_change_gets_the_list(requester, supervisor):
    open_decision(requester, "First")
    client = logged_in(supervisor)
    listing = client.get("/decisions/", **HTMX).content.decode()
    poll_url = listing.split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "known=" in poll_url
    assert client.get(poll_url, **HTMX).status_code == 204
    open_decision(requester, "Second")
    changed = client.get(poll_url, **HTMX)
    assert changed.status_code == 200
    assert sorted(titles(changed.content.decode())) == ["First", "Second"]
    # Without htmx (a bookmarked URL), the page is always rendered.
    assert client.get(poll_url).status_code == 200


def test_the_queue_page_costs_the_same_queries_for_3_or_30_rows(requester, supervisor):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert logged_in(supervisor).get("/decisions/").status_code == 200
        return len(captured)

    for i in range(3):
        open_decision(requester, f"A{i}", due_in=timedelta(hours=i - 1))
    few = queries()
    for i in range(27):
        decision_claim(
            decision=open_decision(requester, f"B{i}"), user=make_user(f"u{i}", "supervisor")
        )
    assert queries() == few


def test_the_detail_page_lists_context_values_it_has_no_special_place_for(requester, supervisor):
    decision = open_decision(
        requester,
        "Odd one",
        context={"amount": "12.00 EUR", "supplier": "ACME", "nested": {"x": 1}},
    )
    html = logged_in(supervisor).get(f"/decisions/{decision.id}/").content.decode()
    assert "<dt>Amount</dt><dd>12.00 EUR</dd>" in html
    assert "<dt>Supplier</dt><dd>ACME</dd>" in html
    assert "<dt>Nested</dt>" not in html  # shown in the JSON of all context instead


def test_an_admin_may_release_a_colleagues_claim(requester, supervisor, admin_user):
    decision = open_decision(requester, "Held")
    decision_claim(decision=decision, user=supervisor)
    client = logged_in(admin_user)
    assert "Release supervisor's claim" in client.get(f"/decisions/{decision.id}/").content.decode()
    response = client.post(f"/decisions/{decision.id}/claim/", {"action": "release"}, **HTMX)
    assert response.status_code == 200 and "Released" in response.content.decode()
    decision.refresh_from_db()
    assert decision.claimed_by is None
    assert decision.audit.filter(action="released", username="admin").exists()


def test_a_colleague_may_not_release_a_claim(requester, supervisor):
    decision = open_decision(requester, "Held")
    decision_claim(decision=decision, user=supervisor)
    colleague = logged_in(make_user("colleague", "supervisor"))
    assert "Release" not in colleague.get(f"/decisions/{decision.id}/").content.decode()
    response = colleague.post(f"/decisions/{decision.id}/claim/", {"action": "release"}, **HTMX)
    assert response.status_code == 403
    assert "Only the person who claimed" in response.content.decode()
    assert Decision.objects.get(id=decision.id).claimed_by == supervisor


def test_detail_and_posts_are_404_for_people_outside_the_role(requester, outsider):
    decision = open_decision(requester, "Private")
    client = logged_in(outsider)
    assert client.get(f"/decisions/{decision.id}/").status_code == 404
    assert (
        client.post(f"/decisions/{decision.id}/decide/", {"outcome": "approved"}).status_code == 404
    )
    assert client.post(f"/decisions/{decision.id}/claim/", {"action": "claim"}).status_code == 404
    assert client.get("/decisions/999999/").status_code == 404


def test_the_requester_sees_their_decision_but_may_not_decide_it(requester):
    decision = open_decision(requester, "Mine")
    html = logged_in(requester).get(f"/decisions/{decision.id}/").content.decode()
    assert "Only members of supervisor may decide this." in html
    assert 'name="outcome"' not in html


def test_pages_and_posts_need_a_signed_in_user(requester):
    decision = open_decision(requester, "Any")
    for url in (f"/decisions/{decision.id}/", "/decisions/?view=archive"):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = Client().post(f"/decisions/{decision.id}/decide/", {"outcome": "approved"})
    assert response.status_code == 302
    assert Decision.objects.get(id=decision.id).is_pending


def test_a_queue_over_several_roles_keeps_one_order_across_pages(requester, admin_user):
    # Each role's decisions are read in index order and merged: the order must be global.
    expected_by_due = []
    for i in range(25):
        role = "finance" if i % 3 else "supervisor"
        due_in = None if i % 5 == 0 else timedelta(hours=(i * 7) % 11 - 5, minutes=i)
        decision = open_decision(requester, f"D{i:02}", role=role, due_in=due_in)
        expected_by_due.append(decision)
    expected_by_due.sort(
        key=lambda d: (d.due_at is None, d.due_at or d.created_at, d.created_at, d.id)
    )
    client = logged_in(admin_user)

    def listed(sort: str) -> list[str]:
        pages = [client.get(f"/decisions/?sort={sort}&page={n}").content.decode() for n in (1, 2)]
        assert "Page 1 of 2 (25 decisions)" in pages[0]
        return titles(pages[0]) + titles(pages[1])

    assert listed("due") == [d.title for d in expected_by_due]
    assert listed("age") == [f"D{i:02}" for i in range(25)]
    assert listed("-age") == [f"D{i:02}" for i in reversed(range(25))]
