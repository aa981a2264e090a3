import json

from django.core.management.base import BaseCommand, CommandError

from missions.models import Mission
from missions.selectors import mission_steps


class Command(BaseCommand):
    help = "Show a mission's state and every checkpoint: mission_steps MISSION_ID"

    def add_arguments(self, parser):
        parser.add_argument("mission_id")
        parser.add_argument("--results", action="store_true", help="print each step's result")

    def handle(self, *args, mission_id, results=False, **options):
        mission = Mission.objects.filter(id=mission_id).first() if _is_uuid(mission_id) else None
        if mission is None:
            raise CommandError(f"no mission {mission_id}")
        self.stdout.write(f"{mission} type={mission.type} v{mission.version}")
        if mission.waiting_on:
            self.stdout.write(f"waiting on {mission.waiting_detail} since {mission.waiting_since}")
        if mission.error:
            self.stdout.write(f"error: {mission.error}")
        for step in mission_steps(mission=mission):
            took = f"{step.duration_seconds:.3f}s" if step.duration_seconds is not None else "-"
            self.stdout.write(
                f"{step.position:>4} {step.name:<30} {step.kind:<11} {step.status:<9} "
                f"attempts={step.attempts} {took} {step.error}"
            )
            if results:
                self.stdout.write(f"     {json.dumps(step.result)[:500]}")
        if mission.verdict is not None:
            self.stdout.write(f"verdict: {json.dumps(mission.verdict)}")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
