"""Celery tasks: thin callers of the engine and the scheduler."""

from celery import shared_task

from missions import engine, fan_out, services, waits
from missions.handover import woken_missions_run_here


@shared_task(name=engine.ADVANCE_TASK, acks_late=True, ignore_result=True)
def advance_mission(mission_id: str) -> str:
    with woken_missions_run_here():  # a parent this pass's end woke runs here next
        return engine.mission_advance(mission_id=mission_id).value


@shared_task(name=fan_out.MAP_ITEM_TASK, acks_late=True, ignore_result=True)
def run_map_item(mission_id: str, step_name: str, index: int) -> str:
    with woken_missions_run_here():  # the mission the map's last item woke runs here next
        return fan_out.map_item_run(mission_id=mission_id, step_name=step_name, index=index)


@shared_task(name=engine.WAKE_TASK, ignore_result=True)
def wake_if_due(mission_id: str) -> bool:
    return waits.mission_wake_if_due(mission_id=mission_id)


@shared_task(name="missions.tick", ignore_result=True)
def tick() -> dict:
    return services.missions_tick()
