from django.core.management.base import BaseCommand

from missions.selectors import missions_stuck


class Command(BaseCommand):
    help = "List missions that are not moving, and why."

    def handle(self, *args, **options):
        stuck = missions_stuck()
        for mission, reason in stuck:
            self.stdout.write(f"{mission.id} {mission.type:<20} {mission.status:<8} {reason}")
        self.stdout.write(f"{len(stuck)} stuck mission(s)")
