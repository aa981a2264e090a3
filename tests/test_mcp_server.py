"""StudioX as an MCP server over streamable HTTP at /mcp (docs/api.md), through a real uvicorn."""

import asyncio
import json
import time

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from missions.models import Mission
from tests.support.api import grant, token_for, waiting_for_decision
from tests.support.engine import started
from tests.support.processes import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

TOOLS = {
    "list_mission_types",
    "start_mission",
    "get_mission",
    "list_pending_decisions",
    "send_event",
}


def session(base: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Token {token}"}, timeout=30)
    return Client(streamable_http_client(f"{base}/mcp", http_client=http))


def call(base: str, token: str, *calls: tuple[str, dict]) -> list:
    """Run tool calls in one MCP session; each answer is (is_error, structured or text)."""

    async def run() -> list:
        answers = []
        async with session(base, token) as client:
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                text = result.content[0].text if result.content else ""
                answers.append(
                    (result.is_error, text if result.is_error else result.structured_content)
                )
        return answers

    return asyncio.run(run())


def test_an_agent_lists_tools_starts_a_mission_and_follows_it(live_web, requester, processes):
    token = token_for(requester)

    async def tools() -> set[str]:
        async with session(live_web.url, token) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert asyncio.run(tools()) == TOOLS
    [(error, types)] = call(live_web.url, token, ("list_mission_types", {}))
    assert not error
    count = next(t for t in types["mission_types"] if t["name"] == "test_count")
    assert count["input_schema"]["required"] == ["steps"]

    start = (
        "start_mission",
        {"type": "test_count", "input": {"steps": 2}, "idempotency_key": "m-1", "priority": 3},
    )
    [(error, first), (_, again)] = call(live_web.url, token, start, start)
    assert not error, first
    assert (first["created"], again["created"]) == (True, False)
    mission_id = first["mission"]["id"]
    assert again["mission"]["id"] == mission_id
    stored = Mission.objects.get(id=mission_id)
    assert (stored.started_by, stored.priority) == (requester, 3)

    processes.worker()

    def finished():
        [(error, answer)] = call(live_web.url, token, ("get_mission", {"mission_id": mission_id}))
        assert not error, answer
        return answer if answer["mission"]["status"] == "succeeded" else None

    answer = eventually(finished, what="the mission to succeed", attempts=300, pause=0.2)
    assert answer["mission"]["verdict"] == {"outcome": "counted", "total": 2}
    kinds = [o["kind"] for o in answer["observations"]]
    assert kinds[0] == "started" and kinds[-1] == "verdict"


def test_tools_refuse_what_the_api_refuses(live_web, requester, outsider):
    token = token_for(requester)
    hidden = started(outsider)
    answers = call(
        live_web.url,
        token,
        ("start_mission", {"type": "test_refuse", "input": {"order_id": "A-1", "amount": "-1"}}),
        ("start_mission", {"type": "nope", "input": {}}),
        ("get_mission", {"mission_id": str(hidden.id)}),
        ("get_mission", {"mission_id": "not-a-uuid"}),
        ("send_event", {"event": "shipped", "key": "k"}),
        ("start_mission", {"type": "test_count", "input": {}, "idempotency_key": "k" * 201}),
        ("start_mission", {"type": "test_count", "input": {"steps": 1}, "priority": 11}),
    )
    assert all(error for error, _ in answers), answers
    bad_input, unknown, hidden_one, malformed, event, long_key, urgent = (t for _, t in answers)
    assert "idempotency_key: use at most 200 characters" in long_key
    assert "priority must be a whole number from -10 to 10" in urgent
    assert "amount" in bad_input
    assert "unknown mission type 'nope'" in unknown
    assert "not-a-uuid" in malformed and str(hidden.id) in hidden_one
    assert "missions.add_event" in event
    assert Mission.objects.count() == 1


def test_an_integrator_sends_an_event_idempotently(live_web, requester):
    from tests.conftest import make_user

    integrator = make_user("integrator")
    grant(integrator, "missions.add_event")
    send = (
        "send_event",
        {"event": "shipped", "key": "o-1", "payload": {"n": 1}, "idempotency_key": "e1"},
    )
    other = ("send_event", {"event": "shipped", "key": "o-2", "idempotency_key": "e1"})
    [(error, first), (_, again), (conflict, message)] = call(
        live_web.url, token_for(integrator), send, send, other
    )
    assert not error, first
    assert (first["created"], again["created"], again["id"]) == (True, False, first["id"])
    assert conflict and "e1" in message


@pytest.mark.parametrize("header", [None, "Token wrong", "Basic dXNlcjpwdw=="])
def test_the_endpoint_needs_a_valid_token(live_web, header):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if header:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(
        f"{live_web.url}/mcp", headers=headers, content=json.dumps(body), timeout=10
    )
    assert response.status_code == 401
    assert "Token" in response.json()["detail"]


def test_a_bearer_token_works_too_and_django_still_serves_the_rest(live_web, requester):
    token = token_for(requester)

    async def tools() -> int:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with Client(
            streamable_http_client(f"{live_web.url}/mcp", http_client=http)
        ) as client:
            return len((await client.list_tools()).tools)

    assert asyncio.run(tools()) == len(TOOLS)
    api = httpx.get(
        f"{live_web.url}/api/mission-types/", headers={"Authorization": f"Token {token}"}
    )
    assert api.status_code == 200 and api.json()
    assert httpx.get(f"{live_web.url}/healthz").json()["database"]["status"] == "ok"
    started_at = time.monotonic()
    assert httpx.get(f"{live_web.url}/api/missions/", timeout=10).status_code == 401
    assert time.monotonic() - started_at < 10


def test_an_oversized_body_is_refused(live_web, requester):
    headers = {
        "Authorization": f"Token {token_for(requester)}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    arguments = {"type": "test_count", "input": {"steps": 1, "marker": "x" * 1_100_000}}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "start_mission", "arguments": arguments},
    }
    response = httpx.post(
        f"{live_web.url}/mcp", headers=headers, content=json.dumps(body), timeout=30
    )
    assert response.status_code == 413
    assert not Mission.objects.exists()


def test_an_approver_lists_the_pending_decisions_of_their_roles(live_web, requester, supervisor):
    mission, decision = waiting_for_decision(requester)
    [(error, mine), (_, none)] = [
        *call(live_web.url, token_for(supervisor), ("list_pending_decisions", {})),
        *call(live_web.url, token_for(requester), ("list_pending_decisions", {})),
    ]
    assert not error, mine
    [item] = mine["decisions"]
    assert (item["id"], item["mission"], item["role"]) == (
        decision.id,
        str(mission.id),
        "supervisor",
    )
    assert none == {"decisions": []}
