"""The top bar's count of pending decisions: the user's queue, rendered with every page, and
re-fetched when the decisions WebSocket says a decision of the user's roles opened or was
decided."""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from decisions.consumers import DecisionQueueConsumer
from decisions.live import hints_flush
from decisions.services import decision_decide
from tests.conftest import make_user
from tests.support.decisions import open_decision

BADGE = re.compile(r'<span id="pending-count"[^>]*?( hidden)?><span aria-hidden="true">(\d+)<')


def badge(html: str) -> tuple[int, bool] | None:
    """(the count, whether it is hidden), or None when the page has no badge."""
    found = BADGE.search(html)
    return (int(found.group(2)), bool(found.group(1))) if found else None


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_top_bar_counts_the_decisions_waiting_in_the_users_queue(requester, supervisor):
    open_decision(requester, "Approve A-1", step="one")
    open_decision(requester, "Approve A-2", step="two")
    open_decision(requester, "Sign off A-2", step="three", role="finance")
    decided = open_decision(requester, "Approve A-3", step="four")
    decision_decide(decision=decided, user=supervisor, outcome="approved")

    page = signed_in(supervisor).get(reverse("home")).text

    assert badge(page) == (2, False)
    assert "Decision Queue <span" in page and " (2 pending)</span>" in page


@pytest.mark.django_db
def test_nothing_waiting_hides_the_badge(outsider, requester):
    open_decision(requester, "Approve A-1")

    assert badge(signed_in(outsider).get(reverse("home")).text) == (0, True)


@pytest.mark.django_db
def test_an_anonymous_visitor_has_no_badge_and_no_count(client, requester):
    open_decision(requester, "Approve A-1")

    assert badge(client.get(reverse("login")).text) is None
    response = client.get(reverse("decisions:pending_count"))
    assert response.status_code == 401  # not the login page, which htmx would swap in
    assert "Log in" in response.text


@pytest.mark.django_db
def test_the_badge_fragment_is_the_badge_alone(requester, supervisor):
    open_decision(requester, "Approve A-1")

    response = signed_in(supervisor).get(
        reverse("decisions:pending_count"), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert response.text.strip().startswith('<span id="pending-count"')
    assert badge(response.text) == (1, False)


@pytest.mark.django_db
def test_the_admin_does_not_count(admin_client, django_assert_max_num_queries, requester):
    """The count is lazy: pages without the top bar run no query for it."""
    open_decision(requester, "Approve A-1")
    url = reverse("admin:index")
    admin_client.get(url)  # warm caches (content types, sessions)
    with django_assert_max_num_queries(10) as queries:
        admin_client.get(url)
    assert not [q for q in queries.captured_queries if "decisions_decision" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_the_badge_follows_live_hints_when_a_decision_opens_and_is_decided(requester, supervisor):
    """What pending-count.js does: on each hint over ws/decisions/, re-fetch the badge."""
    colleague = make_user("colleague", "supervisor")
    client = signed_in(supervisor)

    def count() -> int:
        return badge(client.get(reverse("decisions:pending_count")).text)[0]

    def open_one():
        decision = open_decision(requester, "Approve A-1")
        hints_flush()
        return decision

    def decide(decision):
        decision_decide(decision=decision, user=colleague, outcome="approved")
        hints_flush()

    async def body() -> list[tuple[str | None, int]]:
        seen = []
        communicator = WebsocketCommunicator(DecisionQueueConsumer.as_asgi(), "/ws/decisions/")
        communicator.scope["user"] = supervisor
        assert (await communicator.connect())[0]
        first = await communicator.receive_json_from(timeout=5)
        seen.append((first.get("change"), await database_sync_to_async(count)()))
        decision = await database_sync_to_async(open_one)()
        opened = await communicator.receive_json_from(timeout=5)
        seen.append((opened["change"], await database_sync_to_async(count)()))
        await database_sync_to_async(decide)(decision)
        decided = await communicator.receive_json_from(timeout=5)
        seen.append((decided["change"], await database_sync_to_async(count)()))
        await communicator.disconnect()
        return seen

    assert async_to_sync(body)() == [(None, 0), ("opened", 1), ("decided", 0)]


@pytest.mark.django_db
def test_every_signed_in_page_loads_the_live_badge_script(supervisor):
    page = signed_in(supervisor).get(reverse("home")).text

    assert page.index("studiox/live-socket.js") < page.index("decisions/pending-count.js")
