from django.core.management.base import BaseCommand

from studiox.seed import DEMO_USERS, demo_password, seed_apps, seed_roles_and_users


class Command(BaseCommand):
    help = "Create the roles, the demo users and the demo knowledge. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="demo users' password (default: generated once)")

    def handle(self, *args, password=None, **options):
        password = demo_password(password)
        created = seed_roles_and_users(password=password)
        seeded = seed_apps()
        self.stdout.write(f"Demo users: {', '.join(DEMO_USERS)} (created now: {len(created)})")
        self.stdout.write(f"Demo password: {password}")
        if seeded:
            self.stdout.write(f"Seeded: {', '.join(seeded)}")
