"""A per-second schedule under two real `celery beat` processes and two workers, one beat killed
with SIGKILL and started again: exactly one mission per fire time, none missing."""

from __future__ import annotations

import itertools
import signal
from datetime import timedelta

import pytest

from missions.models import Mission
from schedules.models import Schedule, ScheduleFire
from schedules.services import schedule_save, schedule_set_enabled
from tests.support.processes import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def fired(schedule: Schedule) -> int:
    return ScheduleFire.objects.filter(schedule=schedule).count()


def test_two_schedulers_and_a_restart_start_one_mission_per_second(processes):
    schedule = schedule_save(
        schedule=Schedule(
            name="every second",
            mission_type="test_count",
            cron="* * * * * *",  # the sixth field: seconds
            input={"steps": 1},
            catch_up=Schedule.CatchUp.ALL,
        )
    )
    # Two workers: the ticks of both schedulers run at the same time, not one after the other.
    workers = [processes.worker("a"), processes.worker("b")]
    doomed = processes.scheduler()
    processes.scheduler()
    for worker in workers:
        processes.worker_ready(worker, attempts=3000)  # a busy machine starts them slowly
    eventually(
        lambda: fired(schedule) >= 3, what="three fire times under two schedulers", attempts=1800
    )

    processes.kill(doomed, signal.SIGKILL)
    at_kill = fired(schedule)
    eventually(
        lambda: fired(schedule) >= at_kill + 3, what="fires with one scheduler left", attempts=1800
    )
    processes.scheduler()
    at_restart = fired(schedule)
    eventually(
        lambda: fired(schedule) >= at_restart + 3, what="fires after the restart", attempts=1800
    )
    schedule_set_enabled(schedule=schedule, enabled=False)

    fires = list(schedule.fires.order_by("fire_time"))
    seconds = [b.fire_time - a.fire_time for a, b in itertools.pairwise(fires)]
    assert set(seconds) == {timedelta(seconds=1)}, processes.logs()  # none missing, none twice
    assert all(fire.mission_id and not fire.error for fire in fires)
    started = Mission.objects.filter(idempotency_key__startswith=f"schedule:{schedule.pk}:")
    assert started.count() == len(fires) == len({fire.mission_id for fire in fires})
    eventually(
        lambda: all(m.status == "succeeded" for m in started.all()),
        what="every scheduled mission to run",
        attempts=1800,
    )
