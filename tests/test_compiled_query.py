"""The scheduler's queries are composed once and run again with new times
(studiox.compiled_query): each run answers what the queryset itself would."""

from datetime import timedelta

import pytest
from django.utils import timezone

from missions.models import Mission
from studiox.compiled_query import CompiledQuery
from tests.support.engine import started

pytestmark = pytest.mark.django_db


def due(now):
    return (
        Mission.objects.filter(status=Mission.Status.WAITING, wake_at__lte=now)
        .order_by("wake_at")
        .values_list("id", flat=True)
    )


def test_each_run_answers_what_the_queryset_answers_for_its_time(requester):
    base = timezone.now()
    for minutes in (1, 2, 3):
        mission = started(requester)
        Mission.objects.filter(id=mission.id).update(
            status=Mission.Status.WAITING, wake_at=base + timedelta(minutes=minutes)
        )
    compiled = CompiledQuery(due)
    for minutes in (0, 1, 2, 3, 4):
        now = base + timedelta(minutes=minutes, seconds=30)
        assert compiled.values(now=now) == list(due(now))
    assert len(compiled.values(now=base + timedelta(minutes=10))) == 3


def test_rows_keep_their_columns_and_types(requester):
    mission = started(requester)
    compiled = CompiledQuery(
        lambda since: Mission.objects.filter(created_at__gte=since).values_list("id", "priority")
    )
    assert list(compiled.rows(since=mission.created_at)) == [(mission.id, mission.priority)]


def test_a_time_the_query_does_not_use_unchanged_is_refused(db):
    shifted = CompiledQuery(lambda now: due(now - timedelta(seconds=5)))
    with pytest.raises(ValueError, match="now"):
        shifted.values(now=timezone.now())
