"""Demo data for the embedded default: roles, users, and whatever each showcase seeds."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from showcases.reconciliation import seed as reconciliation_seed
from showcases.refund import seed as refund_seed

ROLES = ("supervisor", "finance", "controller")  # controller: the reconciliation's escalation
DEMO_USERS = {
    "requester": {"groups": (), "is_staff": False},
    "supervisor": {"groups": ("supervisor",), "is_staff": False},
    "finance": {"groups": ("finance",), "is_staff": False},
    "controller": {"groups": ("controller",), "is_staff": False},
    "admin": {
        "groups": ("supervisor", "finance", "controller"),
        "is_staff": True,
        "is_superuser": True,
    },
    # A system that starts missions and sends events through the API (token: create_api_token).
    "integrator": {"groups": (), "is_staff": False, "permissions": ("missions.add_event",)},
}
# Each showcase seeds its own demo data with `seed_demo()` in its `seed` module (the refund's
# policy, orders and payments are in showcases/refund/demo/); add a showcase's module here.
APP_SEEDERS = (refund_seed, reconciliation_seed)


def demo_password(explicit: str | None = None) -> str:
    """The demo password: given, from STUDIOX_DEMO_PASSWORD, or made once and kept under var/."""
    if explicit:
        return explicit
    from_env = settings.STUDIOX_DEMO_PASSWORD
    if from_env:
        return from_env
    stored = Path(settings.VAR_DIR) / "demo-password"
    if not stored.exists():
        stored.write_text(secrets.token_urlsafe(12))
        stored.chmod(0o600)
    return stored.read_text().strip()


def demo_password_origin(explicit: str | None = None) -> str:
    """Where `demo_password(explicit)` comes from: what to say where the password is not shown."""
    if explicit:
        return "the --password option"
    if settings.STUDIOX_DEMO_PASSWORD:
        return "STUDIOX_DEMO_PASSWORD"
    return str(Path(settings.VAR_DIR) / "demo-password")


def check_demo_password(password: str) -> None:
    """Raise ValidationError unless `password` passes AUTH_PASSWORD_VALIDATORS for every demo
    user (the similarity check compares it with each name and e-mail)."""
    User = get_user_model()
    for username in DEMO_USERS:
        validate_password(password, User(username=username, email=f"{username}@studiox.local"))


@transaction.atomic
def seed_roles_and_users(*, password: str) -> list[str]:
    """Create the roles and demo users; existing users keep their data and get `password`,
    which must pass the password validators (ValidationError otherwise, nothing changed)."""
    check_demo_password(password)
    for role in ROLES:
        Group.objects.get_or_create(name=role)
    User = get_user_model()
    created = []
    for username, spec in DEMO_USERS.items():
        user, was_created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@studiox.local"}
        )
        user.is_staff = spec["is_staff"]
        user.is_superuser = spec.get("is_superuser", False)
        user.set_password(password)
        user.save()
        user.groups.set(Group.objects.filter(name__in=spec["groups"]))
        user.user_permissions.set(_permissions(spec.get("permissions", ())))
        if was_created:
            created.append(username)
    return created


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    found = []
    for name in names:
        app_label, codename = name.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def seed_apps() -> list[str]:
    """Run every showcase's demo seeder; the names of the modules that ran."""
    for module in APP_SEEDERS:
        module.seed_demo()
    return [module.__name__ for module in APP_SEEDERS]
