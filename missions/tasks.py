"""Celery tasks: thin callers of the engine and the scheduler."""

from celery import shared_task

from missions import engine, fan_out, services


@shared_task(name=engine.ADVANCE_TASK, acks_late=True, ignore_result=True)
def advance_mission(mission_id: str) -> str:
    return engine.mission_advance(mission_id=mission_id).value


@shared_task(name=fan_out.MAP_ITEM_TASK, acks_late=True, ignore_result=True)
def run_map_item(mission_id: str, step_name: str, index: int) -> str:
    return fan_out.map_item_run(mission_id=mission_id, step_name=step_name, index=index)


@shared_task(name="missions.tick", ignore_result=True)
def tick() -> dict:
    return services.missions_tick()
