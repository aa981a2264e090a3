from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from studiox.seed import (
    DEMO_USERS,
    demo_password,
    demo_password_origin,
    seed_apps,
    seed_roles_and_users,
)


class Command(BaseCommand):
    help = "Create the roles, the demo users and the demo knowledge. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="demo users' password (default: generated once)")

    def handle(self, *args, password=None, **options):
        origin = demo_password_origin(password)
        password = demo_password(password)
        try:
            created = seed_roles_and_users(password=password)
        except ValidationError as exc:
            raise CommandError(
                f"The demo password is too weak: {' '.join(exc.messages)} Set "
                "STUDIOX_DEMO_PASSWORD (or --password) to a stronger one, or unset it to have "
                "one generated."
            ) from exc
        seeded = seed_apps()
        self.stdout.write(f"Demo users: {', '.join(DEMO_USERS)} (created now: {len(created)})")
        self.stdout.write(self._password_line(password, origin))
        if seeded:
            self.stdout.write(f"Seeded: {', '.join(seeded)}")

    def _password_line(self, password: str, origin: str) -> str:
        # Only a person at a terminal sees the password: redirected output lands in log files
        # and aggregators, which are no place for it.
        if self.stdout.isatty():
            return f"Demo password: {password}"
        return f"Demo password: not shown, as this output is not a terminal; see {origin}"
