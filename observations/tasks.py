"""Celery tasks of the rail. Celery autodiscovers `<app>.tasks` only, so the retention task
(docs/concepts.md, scheduled by studiox.celery) lives here and calls missions.retention."""

from celery import shared_task

from missions.retention import missions_purge_expired


@shared_task(name="missions.purge", ignore_result=True)
def purge_expired() -> dict:
    return missions_purge_expired()
