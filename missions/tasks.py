"""Celery tasks: thin callers of the engine and the scheduler."""

from celery import shared_task

from missions import engine, services


@shared_task(name="missions.advance", acks_late=True, ignore_result=True)
def advance_mission(mission_id: str) -> str:
    return engine.mission_advance(mission_id=mission_id).value


@shared_task(name="missions.tick", ignore_result=True)
def tick() -> dict:
    return services.missions_tick()
