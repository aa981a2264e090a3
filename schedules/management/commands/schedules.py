from django.core.management.base import BaseCommand

from schedules.selectors import schedules_with_last_fire
from schedules.services import schedules_sync_code


class Command(BaseCommand):
    help = "List the schedules with their next fire time and last run."

    def handle(self, *args, **options):
        schedules_sync_code()
        schedules = list(schedules_with_last_fire())
        for s in schedules:
            state = "on " if s.enabled else "off"
            next_fire = f"{s.next_fire_at:%Y-%m-%d %H:%M:%S} UTC" if s.next_fire_at else "-"
            last = f"{s.last_fire_at:%Y-%m-%d %H:%M:%S} UTC" if s.last_fire_at else "-"
            self.stdout.write(
                f"{s.name:<24} {s.mission_type:<20} {state} {s.cron!r:<16} {s.timezone:<16} "
                f"next {next_fire}  last {last} {s.last_mission_status or ''}"
            )
        self.stdout.write(f"{len(schedules)} schedule(s)")
