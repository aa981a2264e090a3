import os

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

# Fixtures of tests.support, offered to every test that asks for one by name.
from tests.support.live import live_web, live_web_factory, live_worker  # noqa: F401
from tests.support.llm import llm_server  # noqa: F401
from tests.support.rail import fast_polls, slow_polls  # noqa: F401

IN_CI = os.getenv("CI") == "true"

# Production-strength hashing costs half a second per user created; tests create hundreds.
settings.PASSWORD_HASHERS = [
    "tests.support.hashing.QuickPBKDF2PasswordHasher",
    *settings.PASSWORD_HASHERS,
]


def production_services() -> bool:
    return (
        settings.IS_POSTGRES
        and settings.BROKER_URL.startswith("redis://")
        and settings.CHANNEL_LAYER_URL.startswith("redis://")
    )


def require(condition: bool, what: str) -> None:
    """Skip locally when a service is missing; under CI=true a missing service is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI needs {what}, and it is not configured")
    pytest.skip(f"needs {what}")


@pytest.fixture(autouse=True)
def _production_only(request):
    """Tests marked `production` need PostgreSQL + Redis: locally they skip without them,
    under CI=true they fail; the CI's embedded run deselects them by marker (-m)."""
    if request.node.get_closest_marker("production"):
        require(production_services(), "PostgreSQL and Redis (DATABASE_URL, STUDIOX_*_URL)")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, dropped cleanly at the end: a worker or server process a test
    started may have exited while PostgreSQL still ends its session, and DROP DATABASE would
    then fail ("being accessed by other users") and leave the database behind."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


def make_user(username: str, *roles: str, **extra) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def requester(db) -> User:
    return make_user("requester")


@pytest.fixture
def supervisor(db) -> User:
    return make_user("supervisor", "supervisor")


@pytest.fixture
def finance(db) -> User:
    return make_user("finance", "finance")


@pytest.fixture
def outsider(db) -> User:
    return make_user("outsider")


@pytest.fixture
def admin_user(db) -> User:
    return make_user("admin", "supervisor", "finance", is_staff=True, is_superuser=True)


@pytest.fixture
def processes(tmp_path):
    """Real worker/scheduler processes; every one is stopped by pid when the test ends."""
    from tests.support.processes import Processes

    group = Processes(tmp_path)
    yield group
    group.stop_all()
    print(group.logs())  # captured: pytest shows it only when the test failed
