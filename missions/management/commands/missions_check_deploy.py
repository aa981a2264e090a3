from django.core.management.base import BaseCommand, CommandError

from missions.engine import mission_check_compatibility
from missions.selectors import missions_in_flight


class Command(BaseCommand):
    help = (
        "Before a deploy: replay every in-flight mission's recorded steps against the current "
        "code, executing nothing, and list those that would diverge. Exits 1 if any would."
    )

    def handle(self, *args, **options):
        checked, diverging = 0, 0
        for mission in missions_in_flight().iterator(chunk_size=200):
            checked += 1
            problem = mission_check_compatibility(mission)
            if problem:
                diverging += 1
                self.stdout.write(f"{mission.id} {mission.type} v{mission.version}: {problem}")
        self.stdout.write(f"{checked} in-flight mission(s) checked, {diverging} would diverge")
        if diverging:
            raise CommandError("some in-flight missions would diverge from the current code")
