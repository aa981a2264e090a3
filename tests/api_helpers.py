"""Shared by the API and MCP tests: token clients and missions in a chosen state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from missions.models import Mission
from missions.services import mission_start
from tests.engine_helpers import drain


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Rate-limit counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def grant(user, codename: str) -> None:
    app_label, name = codename.split(".")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=name)
    )


def started(user, type: str = "test_count", **input) -> Mission:
    return mission_start(type=type, input=input or {"steps": 1}, started_by=user).mission


def failed(user) -> Mission:
    mission = drain(started(user, "test_refuse", order_id="A-1", amount="5000"))
    assert mission.status == "failed", mission.status
    return mission


def waiting_for_event(user, key: str) -> Mission:
    mission = drain(started(user, "test_event", key=key))
    assert mission.status == "waiting", mission.status
    return mission
