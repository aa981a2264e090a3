"""/rail/: every active mission the reader may see, what it waits on and for how long."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from missions.models import Mission
from tests.support.engine import drain, started
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


def rail_text(user, **query) -> str:
    response = logged_in(user).get(reverse("observations:rail"), query)
    assert response.status_code == 200
    return response.text


def test_it_needs_a_login():
    response = Client().get(reverse("observations:rail"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_lists_active_missions_with_step_wait_and_requester(admin_user, requester):
    sleeping = drain(started(requester, "test_sleep", seconds=3600))
    Mission.objects.filter(id=sleeping.id).update(
        waiting_since=timezone.now() - timedelta(minutes=3, seconds=5)
    )
    done = drain(started(requester))
    text = rail_text(admin_user)
    row = text[text.index(f'data-mission="{sleeping.id}"') :].split("</tr>")[0]
    assert "Sleeper" in row
    assert "<td>nap</td>" in row  # current step
    assert "Waiting" in row
    assert "Timer &#x27;nap&#x27;" in row  # what it waits on, in words
    assert "3 min 5 s" in row or "3 min 6 s" in row  # waiting for, in words
    assert "<td>requester</td>" in row
    assert f'data-mission="{done.id}"' not in text  # finished missions leave the rail


def test_it_shows_a_reader_only_missions_they_may_see(requester, outsider):
    mine = started(requester)
    theirs = started(outsider)
    text = rail_text(requester)
    assert f'data-mission="{mine.id}"' in text
    assert f'data-mission="{theirs.id}"' not in text
    assert reverse("missions:detail", args=[theirs.id]) not in text  # nor in the feed


def test_the_feed_shows_the_latest_observations_with_their_missions(admin_user):
    mission = drain(started(admin_user, "test_sleep", seconds=3600))
    text = rail_text(admin_user)
    feed = text[text.index('id="rail-feed"') :]
    assert "Waiting for timer" in feed
    assert "Started Sleeper" in feed
    assert reverse("missions:detail", args=[mission.id]) in feed
    # The newest line comes first.
    assert feed.index("Waiting for timer") < feed.index("Started Sleeper")


def test_the_page_subscribes_from_the_sequence_number_it_rendered(admin_user):
    mission = drain(started(admin_user, "test_sleep", seconds=3600))
    last = mission.observations.order_by("-id").first()
    text = rail_text(admin_user)
    assert f'data-live-stream="/ws/rail/" data-after="{last.id}"' in text


def test_the_missions_partial_is_the_refreshable_part_only(admin_user):
    started(admin_user)
    response = logged_in(admin_user).get(
        reverse("observations:rail"), headers={"HX-Request": "true"}
    )
    assert response.text.lstrip().startswith('<div id="rail-missions"')
    assert "rail-feed" not in response.text


def test_it_counts_active_missions_by_status(admin_user):
    drain(started(admin_user, "test_sleep", seconds=3600))
    started(admin_user)
    started(admin_user)
    text = rail_text(admin_user)
    assert '<span class="count">2</span> pending' in text
    assert '<span class="count">1</span> waiting' in text


def test_the_rail_costs_the_same_queries_for_5_or_25_missions(
    admin_user, django_assert_max_num_queries
):
    client = logged_in(admin_user)
    for _ in range(5):
        drain(started(admin_user, "test_sleep", seconds=3600))
    client.get(reverse("observations:rail"))
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("observations:rail"))
    for _ in range(20):
        drain(started(admin_user, "test_sleep", seconds=3600))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("observations:rail"))
