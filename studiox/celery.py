"""The Celery app: one task advances a mission by one step; beat runs the scheduler tick."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studiox.settings")

app = Celery("studiox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_tick(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        settings.STUDIOX_TICK_SECONDS,
        # A tick that waited longer than two periods in the queue is stale: the next one
        # does the same work, so busy workers never face a backlog of ticks.
        sender.signature("missions.tick", options={"expires": settings.STUDIOX_TICK_SECONDS * 2}),
        name="missions.tick",
    )
    # Recurring missions (schedules app): missions must not import schedules, so it has its
    # own tick, with the same period and the same expiry.
    sender.add_periodic_task(
        settings.STUDIOX_TICK_SECONDS,
        sender.signature("schedules.tick", options={"expires": settings.STUDIOX_TICK_SECONDS * 2}),
        name="schedules.tick",
    )
    # Retention (docs/concepts.md): purge expired missions' steps and observations, in batches.
    sender.add_periodic_task(
        settings.STUDIOX_PURGE_SECONDS, sender.signature("missions.purge"), name="missions.purge"
    )


ADVANCE = "missions.advance"


@task_postrun.connect
def close_stale_connections(**kwargs) -> None:
    """Around each task as around each request: drop connections that are broken or older
    than CONN_MAX_AGE (so SQLite's, at 0, every time) and keep the rest."""
    from django.db import close_old_connections

    close_old_connections()


@task_prerun.connect
def before_task(task=None, **kwargs) -> None:
    from django.db import connection

    close_stale_connections()
    if task is not None and task.name == ADVANCE:
        # A step's first statement takes the lease, which reconnects and tries once more if
        # PostgreSQL dropped the connection (missions.lease): the health check's round trip
        # (CONN_HEALTH_CHECKS) before it would only add to every step's latency.
        connection.health_check_done = True
