"""Retention (docs/concepts.md): old missions lose their steps and observations, keep their
verdict."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from missions.models import Mission, Step
from missions.retention import missions_purge_expired
from missions.services import mission_start
from observations.models import Observation
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def finished(user, *, days_ago: float, steps: int = 3) -> Mission:
    mission = mission_start(type="test_count", input={"steps": steps}, started_by=user).mission
    mission = drain(mission)
    assert mission.status == Mission.Status.SUCCEEDED
    when = timezone.now() - timedelta(days=days_ago)
    Mission.objects.filter(id=mission.id).update(finished_at=when)
    mission.refresh_from_db()
    return mission


def test_it_purges_steps_and_observations_of_missions_past_retention(requester, settings):
    settings.STUDIOX_RETENTION_DAYS = 30
    old = finished(requester, days_ago=31)
    steps, lines = old.steps.count(), old.observations.count()
    assert steps == 3 and lines > 0
    purged = missions_purge_expired()
    assert purged == {"steps": steps, "observations": lines}
    old.refresh_from_db()
    assert not old.steps.exists() and not old.observations.exists()
    assert old.status == Mission.Status.SUCCEEDED
    assert old.verdict == {"outcome": "counted", "total": 3}


def test_it_keeps_recent_and_unfinished_missions(requester, settings):
    settings.STUDIOX_RETENTION_DAYS = 30
    recent = finished(requester, days_ago=29)
    waiting = mission_start(type="test_sleep", input={"seconds": 3600}, started_by=requester)
    waiting = drain(waiting.mission)
    # An unfinished mission's history is never purged, however old it is.
    Mission.objects.filter(id=waiting.id).update(created_at=timezone.now() - timedelta(days=400))
    before = {m.id: (m.steps.count(), m.observations.count()) for m in (recent, waiting)}
    assert missions_purge_expired() == {"steps": 0, "observations": 0}
    after = {m.id: (m.steps.count(), m.observations.count()) for m in (recent, waiting)}
    assert after == before


def test_now_decides_what_is_expired(requester, settings):
    settings.STUDIOX_RETENTION_DAYS = 30
    mission = finished(requester, days_ago=10)
    assert missions_purge_expired()["steps"] == 0
    assert missions_purge_expired(now=timezone.now() + timedelta(days=21))["steps"] == 3
    assert not mission.steps.exists()


def test_it_deletes_in_batches_of_the_given_size(requester, settings):
    settings.STUDIOX_RETENTION_DAYS = 1
    finished(requester, days_ago=2, steps=5)
    finished(requester, days_ago=3, steps=2)
    with CaptureQueriesContext(connection) as queries:
        purged = missions_purge_expired(batch_size=3)
    step_table = Step._meta.db_table
    deletes = [q["sql"] for q in queries if q["sql"].startswith(f'DELETE FROM "{step_table}"')]
    assert purged["steps"] == 7
    assert len(deletes) == 3  # 3 + 3 + 1
    # Never everything at once: each batch is picked with a LIMIT.
    picks = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "LIMIT" in q["sql"]]
    assert picks and all(q.endswith("LIMIT 3") for q in picks)


def test_a_second_run_finds_nothing_left(requester, settings):
    settings.STUDIOX_RETENTION_DAYS = 1
    finished(requester, days_ago=2)
    missions_purge_expired(batch_size=2)
    assert missions_purge_expired(batch_size=2) == {"steps": 0, "observations": 0}
    assert Observation.objects.count() == 0


def test_the_scheduler_runs_the_purge_as_a_celery_task():
    from studiox.celery import app

    app.loader.import_default_modules()
    app.finalize()
    assert "missions.purge" in app.tasks
    schedule = app.conf.beat_schedule
    assert schedule["missions.purge"]["task"] == "missions.purge"


def test_the_purge_task_calls_the_retention_service(requester, settings):
    from observations.tasks import purge_expired

    settings.STUDIOX_RETENTION_DAYS = 1
    mission = finished(requester, days_ago=2, steps=2)
    lines = mission.observations.count()
    assert purge_expired.run() == {"steps": 2, "observations": lines}


def test_decisions_and_their_audit_trail_are_kept(requester, settings):
    decisions = pytest.importorskip("decisions.models")
    from django.contrib.auth.models import Group

    settings.STUDIOX_RETENTION_DAYS = 1
    mission = finished(requester, days_ago=2)
    decision = decisions.Decision.objects.create(
        mission=mission,
        step_name="n:0",
        title="Approve the count",
        options=["approved"],
        role=Group.objects.get_or_create(name="supervisor")[0],
        status="approved",
    )
    decisions.DecisionAudit.objects.create(decision=decision, action="opened")
    decisions.DecisionAudit.objects.create(decision=decision, action="approved")
    assert missions_purge_expired()["steps"] == 3
    assert decisions.Decision.objects.filter(id=decision.id, status="approved").exists()
    assert decisions.DecisionAudit.objects.filter(decision=decision).count() == 2
