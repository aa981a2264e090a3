import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from missions.services import MissionError, MissionInputError, mission_start


class Command(BaseCommand):
    help = (
        "Start a mission: start_mission TYPE '{\"input\": ...}' [--user NAME] [--key KEY] "
        "[--priority N]"
    )

    def add_arguments(self, parser):
        parser.add_argument("type")
        parser.add_argument("input", help="the mission input as JSON, or @file.json")
        parser.add_argument("--user", help="start it on behalf of this user")
        parser.add_argument("--key", default="", help="idempotency key")
        parser.add_argument(
            "--priority", type=int, default=0, help="-10..10, higher first (default 0)"
        )

    def handle(self, *args, type, input, user=None, key="", priority=0, **options):
        text = Path(input[1:]).read_text() if input.startswith("@") else input
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"input is not valid JSON: {exc}") from exc
        started_by = None
        if user:
            started_by = get_user_model().objects.filter(username=user).first()
            if started_by is None:
                raise CommandError(f"no user named '{user}'")
        try:
            result = mission_start(
                type=type,
                input=data,
                started_by=started_by,
                idempotency_key=key,
                priority=priority,
            )
        except MissionInputError as exc:
            details = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in exc.errors.items())
            raise CommandError(f"{exc}: {details}") from exc
        except MissionError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Started" if result.created else "Already started"
        self.stdout.write(f"{verb} {result.mission.type} mission {result.mission.id}")
