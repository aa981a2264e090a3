"""/missions/ and /missions/<uuid>/: who sees what, filters, partials, the timeline."""

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from missions.models import Mission, Step
from tests.support.engine import drain, started
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


def test_it_sends_an_anonymous_visitor_to_the_login_page(requester):
    mission = started(requester)
    for url in (reverse("missions:list"), reverse("missions:detail", args=[mission.id])):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_list_shows_a_requester_their_own_missions_only(requester, outsider):
    mine = started(requester)
    theirs = started(outsider)
    response = logged_in(requester).get(reverse("missions:list"))
    assert response.status_code == 200
    assert reverse("missions:detail", args=[mine.id]) in response.text
    assert reverse("missions:detail", args=[theirs.id]) not in response.text


def test_the_list_filters_by_status_and_type(admin_user):
    done = drain(started(admin_user))
    sleeping = drain(started(admin_user, "test_sleep", seconds=3600))
    pending = started(admin_user)
    client = logged_in(admin_user)

    def listed(**query) -> set:
        text = client.get(reverse("missions:list"), query).text
        return {m.id for m in (done, sleeping, pending) if str(m.id) in text}

    assert listed(status="succeeded") == {done.id}
    assert listed(status="waiting") == {sleeping.id}
    assert listed(type="test_count") == {done.id, pending.id}
    assert listed(type="test_count", status="pending") == {pending.id}
    assert listed(status="not-a-status") == {done.id, sleeping.id, pending.id}


def test_the_list_searches_by_type_requester_and_id(admin_user, requester):
    counted = started(requester)
    slept = started(admin_user, "test_sleep", seconds=1)
    client = logged_in(admin_user)

    def listed(q: str) -> set:
        text = client.get(reverse("missions:list"), {"q": q}).text
        return {m.id for m in (counted, slept) if str(m.id) in text}

    assert listed("sleep") == {slept.id}
    assert listed("requester") == {counted.id}
    assert listed(str(counted.id)[:8]) == {counted.id}


def test_the_list_is_paginated(admin_user):
    for _ in range(27):
        started(admin_user)
    client = logged_in(admin_user)
    first = client.get(reverse("missions:list"), {"type": "test_count"})
    second = client.get(reverse("missions:list"), {"type": "test_count", "page": 2})
    assert first.text.count('class="badge pending"') == 25
    assert second.text.count('class="badge pending"') == 2
    assert "type=test_count&amp;page=2" in first.text


def test_htmx_gets_only_the_table(admin_user):
    mission = started(admin_user)
    response = logged_in(admin_user).get(
        reverse("missions:list"), {"status": "pending"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="mission-table">')
    assert "<html" not in response.text
    assert str(mission.id) in response.text


def test_the_list_costs_the_same_queries_for_5_or_25_missions(
    admin_user, django_assert_max_num_queries
):
    client = logged_in(admin_user)
    for _ in range(5):
        started(admin_user)
    client.get(reverse("missions:list"))  # warm the session and the permission cache
    with django_assert_max_num_queries(8) as few:
        client.get(reverse("missions:list"))
    for _ in range(20):
        started(admin_user)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("missions:list"))


def test_a_mission_the_user_may_not_see_is_not_found(requester, outsider):
    mission = started(requester)
    client = logged_in(outsider)
    assert client.get(reverse("missions:detail", args=[mission.id])).status_code == 404
    assert client.get(reverse("missions:detail", args=[uuid.uuid4()])).status_code == 404


def test_the_page_shows_the_verdict_the_steps_and_their_timeline(requester):
    mission = drain(started(requester, steps=3))
    response = logged_in(requester).get(reverse("missions:detail", args=[mission.id]))
    assert response.status_code == 200
    text = response.text
    assert 'data-testid="mission-status">Succeeded<' in text
    assert '"outcome": "counted"' in text.replace("&quot;", '"')
    for name in ("n:0", "n:1", "n:2"):
        assert f'data-step="{name}"' in text
    assert text.count('class="gantt-row"') == 3
    assert "Started Counting" in text  # the observations
    assert f'data-live-stream="/ws/missions/{mission.id}/"' in text


def test_the_page_says_what_a_waiting_mission_waits_on(requester):
    mission = drain(started(requester, "test_sleep", seconds=3600))
    text = logged_in(requester).get(reverse("missions:detail", args=[mission.id])).text
    assert 'data-testid="mission-status">Waiting<' in text
    assert "<dt>Waiting on</dt><dd>Timer &#x27;nap&#x27;</dd>" in text
    assert "data-since=" in text
    assert 'class="gantt-bar wait waiting open"' in text


def test_the_timeline_marks_failed_steps(admin_user, tmp_path):
    mission = drain(started(admin_user, "test_flaky", marker=str(tmp_path / "m"), max_attempts=1))
    assert mission.status == Mission.Status.FAILED
    text = logged_in(admin_user).get(reverse("missions:detail", args=[mission.id])).text
    assert "gantt-bar failed" in text
    assert "upstream unavailable" in text


def test_the_live_partial_is_the_refreshable_part_only(requester):
    mission = started(requester)
    response = logged_in(requester).get(
        reverse("missions:detail", args=[mission.id]), {"partial": "live"}
    )
    assert response.text.lstrip().startswith('<div id="mission-live"')
    assert "<html" not in response.text
    assert "mission-observations" not in response.text


def test_steps_purged_by_retention_are_explained(admin_user, settings):
    mission = drain(started(admin_user))
    Step.objects.filter(mission=mission).delete()
    Mission.objects.filter(id=mission.id).update(finished_at=mission.finished_at.replace(year=2000))
    text = logged_in(admin_user).get(reverse("missions:detail", args=[mission.id])).text
    assert f"more than {settings.STUDIOX_RETENTION_DAYS} days ago" in text


def test_the_page_lists_the_missions_pending_decisions(requester, supervisor):
    decisions = pytest.importorskip("decisions.models")
    from django.contrib.auth.models import Group

    mission = drain(started(requester, "test_sleep", seconds=3600))
    role = Group.objects.get(name="supervisor")
    decisions.Decision.objects.create(
        mission=mission,
        step_name="approve",
        title="Approve refund of 40.00",
        role=role,
        options=["approved", "rejected"],
    )
    decisions.Decision.objects.create(
        mission=mission,
        step_name="old",
        title="Already decided",
        role=role,
        status="approved",
        options=["approved", "rejected"],
    )
    text = logged_in(supervisor).get(reverse("missions:detail", args=[mission.id])).text
    pending = text[text.index('id="decisions-heading"') :].split("</section>")[0]
    assert "Approve refund of 40.00" in pending
    assert "for supervisor" in pending
    assert "Already decided" not in pending


def test_the_mission_page_costs_the_same_queries_for_3_or_30_steps(
    admin_user, django_assert_max_num_queries
):
    client = logged_in(admin_user)
    short = drain(started(admin_user, steps=3))
    long = drain(started(admin_user, steps=30))
    client.get(reverse("missions:detail", args=[short.id]))  # warm the session
    # The top bar's pending-decisions count costs 3 (roles, delegations, the count).
    with django_assert_max_num_queries(15) as few:
        client.get(reverse("missions:detail", args=[short.id]))
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("missions:detail", args=[long.id]))
    assert response.text.count('class="gantt-row"') == 30


def test_every_page_has_a_favicon_that_is_served(requester):
    page = logged_in(requester).get("/missions/").text
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon is not None
    assert Client().get(icon.group(1)).status_code == 200


def test_start_a_refund_is_in_the_navigation_for_signed_in_people(requester):
    nav = logged_in(requester).get("/missions/").text
    assert '<a href="/refunds/new/"' in nav and "Start a refund" in nav
    assert "Start a refund" not in Client().get("/").text
