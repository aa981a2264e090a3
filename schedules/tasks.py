"""Celery task: a thin caller of the schedules tick (beat runs it every STUDIOX_TICK_SECONDS)."""

from celery import shared_task

from schedules import services


@shared_task(name="schedules.tick", ignore_result=True)
def tick() -> dict:
    return services.schedules_tick().as_dict()
