"""The MCP endpoint spends the same per-user request budget as the REST API: an agent cannot
go around the API's rate limit by speaking MCP."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache

from studiox.mcp.http import TokenAuthenticated
from tests.support.api import api_client, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def reached_the_tools(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"tools"})


def call(token: str, address: str = "127.0.0.1") -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP request through the endpoint's authentication and throttling."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"authorization", f"Token {token}".encode())],
        "client": (address, 50000),
    }
    async_to_sync(TokenAuthenticated(reached_the_tools))(scope, receive, send)
    start, body = sent[0], sent[1]["body"]
    return start["status"], dict(start["headers"]), body


@pytest.fixture
def two_per_minute(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "user": "2/minute"},
    }
    cache.clear()
    yield
    cache.clear()


def test_past_the_users_rate_mcp_answers_429_with_retry_after(requester, two_per_minute):
    token = token_for(requester)
    assert call(token)[0] == 200
    assert call(token)[0] == 200
    status, headers, body = call(token)
    assert status == 429
    assert int(headers[b"retry-after"]) >= 1
    assert json.loads(body)["detail"].startswith("Request was throttled.")


def test_the_budget_is_shared_with_the_rest_api(requester, two_per_minute):
    client = api_client(requester)
    assert client.get("/api/missions/").status_code == 200
    assert client.get("/api/missions/").status_code == 200
    assert call(token_for(requester))[0] == 429


def test_each_user_has_a_budget_of_their_own(requester, supervisor, two_per_minute):
    for _ in range(2):
        call(token_for(requester))
    assert call(token_for(requester))[0] == 429
    assert call(token_for(supervisor))[0] == 200


def test_invalid_tokens_from_one_address_lock_it_out_of_mcp_too(requester, settings):
    settings.STUDIOX_TOKEN_FAILURE_LIMIT = 3
    cache.clear()
    statuses = [call(f"not-a-key-{n}", address="10.6.6.6")[0] for n in range(3)]
    assert statuses == [401, 401, 429]
    status, headers, body = call(token_for(requester), address="10.6.6.6")
    assert status == 429
    assert int(headers[b"retry-after"]) > 60
    assert json.loads(body)["detail"].startswith("Too many requests with an invalid API token")
    assert call(token_for(requester), address="10.0.0.3")[0] == 200
    cache.clear()


def test_a_token_with_a_nul_is_refused_not_looked_up(requester):
    assert call("abc\x00def")[0] == 401
