"""Hostile input at every edge: NUL characters (PostgreSQL cannot store them) and deeply nested
JSON (everything that walks it recurses) are a 400 naming the field, never a 500, and nothing
is stored."""

import asyncio
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from mcp.client import Client as McpClient

from knowledge.models import Document, Record
from missions.models import Event, Mission
from studiox.mcp.server import build_server
from studiox.safe_input import MAX_JSON_DEPTH, json_text_too_deep
from tests.support.api import api_client, fresh_throttles, grant, waiting_for_decision  # noqa: F401
from tests.support.engine import started
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

NUL_REFUSED = "NUL characters (U+0000) are not allowed."
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


def assert_json_400(response) -> dict:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors"}
    return body


@pytest.fixture
def integrator(requester):
    grant(requester, "missions.add_event")
    return api_client(requester)


def post_json(client, path: str, text: str):
    return client.post(path, data=text, content_type="application/json")


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"carrier": "DHL\u0000"}, "payload.carrier"),
        ({"carrier\u0000": "DHL"}, "payload.carrier\\u0000"),
        ({"parcels": [{"id": "p-1"}, {"id": "\u0000"}]}, "payload.parcels[1].id"),
        ("\u0000", "payload"),
    ],
)
def test_an_event_with_a_nul_in_its_payload_is_a_400_naming_the_field(integrator, payload, field):
    body = {"event": "shipped", "key": "A-1", "payload": payload}
    response = integrator.post("/api/events/", body, format="json")
    answer = assert_json_400(response)
    assert answer["errors"] == {field: [NUL_REFUSED]}
    assert field in answer["detail"]
    assert not Event.objects.exists()


def test_a_mission_with_a_nul_in_its_input_is_a_400_naming_the_field(requester):
    body = {"type": "api_test_approval", "input": {"subject": "A-1\u0000"}}
    response = api_client(requester).post("/api/missions/", body, format="json")
    assert assert_json_400(response)["errors"] == {"input.subject": [NUL_REFUSED]}
    assert not Mission.objects.exists()


def test_a_decision_comment_with_a_nul_is_a_400(requester, supervisor):
    _, decision = waiting_for_decision(requester)
    body = {"outcome": "approved", "comment": "ok\u0000"}
    response = api_client(supervisor).post(
        f"/api/decisions/{decision.id}/decide/", body, format="json"
    )
    assert assert_json_400(response)["errors"] == {"comment": [NUL_REFUSED]}
    decision.refresh_from_db()
    assert decision.status == "pending"


@pytest.mark.parametrize(
    "query, parameter",
    [("status=%00", "status"), ("type=%00", "type"), ("q=%00", "q"), ("x%00=1", "x\\u0000")],
)
def test_a_nul_in_an_api_query_parameter_is_a_json_400_naming_it(requester, query, parameter):
    response = api_client(requester).get(f"/api/missions/?{query}")
    assert assert_json_400(response)["errors"] == {parameter: [NUL_REFUSED]}


@pytest.mark.parametrize(
    "path, parameter",
    [
        ("/missions/?q=%00", "q"),
        ("/missions/?type=A%00", "type"),
        ("/decisions/?role=%00", "role"),
        ("/rail/?page=%00", "page"),
        ("/admin/missions/mission/?q=%00", "q"),
        ("/admin/knowledge/document/?q=a%00b", "q"),
        ("/admin/knowledge/record/?q=%00", "q"),
        ("/admin/decisions/decision/?q=%00", "q"),
        ("/missions/%00/", "path"),
    ],
)
def test_a_nul_in_a_page_or_admin_url_is_a_400_naming_where(admin_user, path, parameter):
    browser = logged_in(admin_user)
    response = browser.get(path)
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    assert f"{parameter}: {NUL_REFUSED}" in response.content.decode()


def test_a_nul_in_a_form_field_is_a_400_and_starts_nothing(requester):
    browser = logged_in(requester)
    form = {"order_id": "A-1001\u0000", "amount": "12.00", "reason": "damaged"}
    response = browser.post("/refunds/new/", form)
    assert response.status_code == 400
    assert f"order_id: {NUL_REFUSED}" in response.content.decode()
    assert not Mission.objects.exists()


def test_a_nul_in_an_operator_form_is_a_400_and_changes_nothing(requester):
    mission = started(requester)
    browser = logged_in(requester)
    response = browser.post(f"/missions/{mission.id}/cancel/", {"reason": "no\u0000"})
    assert response.status_code == 400
    assert f"reason: {NUL_REFUSED}" in response.content.decode()
    mission.refresh_from_db()
    assert mission.status == "pending"


def test_a_nul_in_a_cookie_is_a_400_before_the_session_is_looked_up(db):
    browser = Client(HTTP_COOKIE="sessionid=abcdefghijklmnop\x00qrstuvwxyz")
    response = browser.get("/missions/")
    assert response.status_code == 400
    assert f"cookie sessionid: {NUL_REFUSED}" in response.content.decode()


def test_a_token_with_a_nul_is_a_401(db):
    response = Client(HTTP_AUTHORIZATION="Token abc\x00def").get("/api/missions/")
    assert response.status_code == 401
    assert "invalid characters" in response.json()["detail"]


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("notes.md", b"# Notes\n\nA \x00 B\n", NUL_REFUSED),
        ("orders.csv", b"key,note\nA-9,x\x00y\n", NUL_REFUSED),
        ("orders.json", b'[{"key": "A-9", "note": "x\\u0000y"}]', f"[0].note: {NUL_REFUSED}"),
        ("orders.json", b'[{"key": "A-9", "note": ' + b"[" * 980 + b"]" * 980 + b"}]", TOO_DEEP),
    ],
)
def test_a_knowledge_file_with_a_nul_or_deep_json_is_refused_on_the_form(
    admin_user, name, content, problem
):
    browser = logged_in(admin_user)
    upload = SimpleUploadedFile(name, content)
    response = browser.post("/admin/knowledge/document/import/", {"file": upload})
    assert response.status_code == 200
    assert f"{name}: {problem}" in response.context["form"].errors["file"][0]
    assert not Document.objects.exists() and not Record.objects.exists()


def nested(kind: str, depth: int) -> str:
    """JSON text nesting `depth` arrays or objects."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("endpoint", ["missions", "events", "decide"])
def test_json_nested_980_levels_deep_is_a_400(requester, supervisor, kind, endpoint):
    grant(supervisor, "missions.add_event")
    _, decision = waiting_for_decision(requester)
    path = {
        "missions": "/api/missions/",
        "events": "/api/events/",
        "decide": f"/api/decisions/{decision.id}/decide/",
    }[endpoint]
    response = post_json(api_client(supervisor), path, nested(kind, 980))
    assert TOO_DEEP in assert_json_400(response)["detail"]


@pytest.mark.parametrize("kind", ["array", "object"])
def test_a_stored_field_nested_deeper_than_the_limit_is_a_400(integrator, kind):
    text = '{"event": "shipped", "key": "A-1", "payload": ' + nested(kind, MAX_JSON_DEPTH) + "}"
    assert TOO_DEEP in assert_json_400(post_json(integrator, "/api/events/", text))["detail"]
    assert not Event.objects.exists()


def test_json_at_the_limit_and_brackets_inside_strings_are_accepted(integrator):
    payload = nested("object", MAX_JSON_DEPTH - 1)
    text = '{"event": "shipped", "key": "[[[{{{", "payload": ' + payload + "}"
    response = post_json(integrator, "/api/events/", text)
    assert response.status_code == 202, response.content[:300]
    assert Event.objects.get().key == "[[[{{{"


@pytest.mark.parametrize(
    "text, too_deep",
    [
        ('{"k": "[[[[", "v": [[1]]}', False),
        ('{"k": "\\"[[[[\\\\", "v": [[1]]}', False),
        ('{"k": [[["]]]"]]]}', True),
    ],
)
def test_the_depth_check_skips_brackets_inside_strings(text, too_deep):
    assert json_text_too_deep(text, limit=3) is too_deep


def call_tool(user, name: str, arguments: dict):
    async def run():
        async with McpClient(build_server(stdio_user_id=user.pk)) as client:
            return await client.call_tool(name, arguments)

    return asyncio.run(run())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "arguments, where",
    [
        ({"event": "shipped", "payload": {"carrier\u0000": "DHL"}}, "payload.carrier\\u0000"),
        ({"event": "shipped", "key": "A-1\u0000"}, "key"),
        ({"event": "shipped\u0000"}, "event"),
        ({"event": "shipped", "payload": json.loads(nested("array", 100))}, "payload"),
    ],
)
def test_mcp_send_event_refuses_nul_and_deep_nesting_with_a_tool_error(requester, arguments, where):
    grant(requester, "missions.add_event")
    result = call_tool(requester, "send_event", arguments)
    assert result.is_error
    message = result.content[0].text
    assert f"send_event: {where}" in message
    assert NUL_REFUSED in message or TOO_DEEP in message
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_mcp_start_mission_refuses_a_nul_in_the_input_with_a_tool_error(requester):
    arguments = {"type": "api_test_approval", "input": {"subject": "\u0000"}}
    result = call_tool(requester, "start_mission", arguments)
    assert result.is_error
    assert result.content[0].text.endswith(f"start_mission: input.subject: {NUL_REFUSED}")
    assert not Mission.objects.exists()
