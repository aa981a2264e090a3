"""For the REST API and MCP tests: token clients and missions in a chosen state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from pydantic import BaseModel
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from decisions.models import Decision
from missions.models import Mission
from missions.runtime import mission
from tests.support.engine import drain, started


class ApprovalInput(BaseModel):
    subject: str = "A-1"


@mission("api_test_approval", version=1, title="Approval", input=ApprovalInput)
def approval(ctx, data: ApprovalInput) -> dict:
    """Waits for a supervisor, then returns what was decided (in-process tests only)."""
    decided = ctx.wait_for_decision(
        "approval", role="supervisor", title=f"Approve {data.subject}", context={"n": 1}
    )
    return {"outcome": decided.outcome, "by": decided.decided_by}


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Rate-limit counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def api_client(user=None) -> APIClient:
    """An API client sending `user`'s token; anonymous without a user."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def grant(user, codename: str) -> None:
    app_label, name = codename.split(".")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=name)
    )


def failed(user) -> Mission:
    mission = drain(started(user, "test_refuse", order_id="A-1", amount="5000"))
    assert mission.status == "failed", mission.status
    return mission


def waiting_for_event(user, key: str) -> Mission:
    mission = drain(started(user, "test_event", key=key))
    assert mission.status == "waiting", mission.status
    return mission


def waiting_for_decision(user, subject: str = "A-1") -> tuple[Mission, Decision]:
    mission = drain(started(user, "api_test_approval", subject=subject))
    assert mission.status == "waiting", mission.status
    return mission, Decision.objects.get(mission=mission)
