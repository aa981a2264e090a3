"""Property-based requests generated from the live OpenAPI schema: none may be a server error,
not even with NUL characters or deeply nested JSON put where the schema allows a value."""

import json
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from studiox.safe_input import MAX_JSON_DEPTH
from tests.support.api import fresh_throttles, token_for, waiting_for_decision  # noqa: F401
from tests.support.engine import started

pytestmark = pytest.mark.django_db

# Loaded at collection (schemathesis' lazy fixture loader does not run on pytest 9); the
# schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# Generated strings may hold NUL characters (the default, set here so that it stays on).
schema.config.generation.update(allow_x00=True)


@pytest.fixture
def admin_token(admin_user) -> str:
    started(admin_user)
    # As Django's test client does: a request must not close the connection that holds the
    # test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield token_for(admin_user)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_is_a_server_error(case, admin_token):
    case.call_and_validate(
        headers={"Authorization": f"Token {admin_token}"}, checks=[not_a_server_error]
    )


NUL_TEXT = st.sampled_from(["\x00", "A-1\x00", "\x00\x00x", "ok\x00ok"])
# Just past the limit, and past Python's recursion limit even as Hypothesis raises it while a
# test runs (so the 980 levels that break a server would pass unnoticed here).
DEPTHS = st.sampled_from([5000, MAX_JSON_DEPTH + 1])
DEEP_MARKER = "\ufdd0deep\ufdd0"
# The fields stored as JSON, which the views pass on unread: attacked first where they exist.
STORED_JSON = {"missions_start": "input", "events_send": "payload"}


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def poison_body(case: schemathesis.Case, data: st.DataObject) -> bytes:
    """The body as JSON text with a NUL in a key or a value, or nested too deep. Sent as text:
    nesting that deep would make the test's own json.dumps recurse out."""
    body = case.body
    deep = deep_object
    if not isinstance(body, dict) or not body:
        body = DEEP_MARKER if data.draw(st.booleans()) else data.draw(NUL_TEXT)
        deep = data.draw(st.sampled_from([deep_array, deep_object]))
    else:
        stored = STORED_JSON.get(case.operation.definition.raw.get("operationId"))
        field = data.draw(st.sampled_from([*([stored] if stored else []), *sorted(body)]))
        attack = data.draw(st.sampled_from(["deep", "key", "value"]))
        inner = body.get(field)
        if attack == "deep":
            value: Any = DEEP_MARKER
        elif attack == "key":
            value = {**(inner if isinstance(inner, dict) else {}), data.draw(NUL_TEXT): "value"}
        else:
            value = data.draw(NUL_TEXT)
        body = {**body, field: value}
    text = json.dumps(body).replace(json.dumps(DEEP_MARKER), deep(data.draw(DEPTHS)))
    return text.encode()


def poison_parameters(parameters: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """The parameters with a NUL in one name or value (a new parameter if there are none)."""
    name = data.draw(st.sampled_from(sorted(parameters) or ["q"]))
    if data.draw(st.booleans()):
        return {**parameters, f"{name}\x00": "1"}
    return {**parameters, name: f"{parameters.get(name, '')}{data.draw(NUL_TEXT)}"}


@pytest.fixture
def existing(admin_user) -> dict[str, str]:
    """Path parameters naming objects the caller sees, so that the views read the bodies."""
    mission, decision = waiting_for_decision(admin_user)
    return {"mission_id": str(mission.id), "decision_id": str(decision.id)}


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_nul_characters_and_deep_nesting_are_refused_never_a_server_error(
    case, data, admin_token, existing
):
    # Bodies first and most often: the URL goes through one check, bodies through each view.
    places = ["body", "body"] if case.operation.method.upper() == "POST" else []
    places += ["query"] + (["path"] if case.path_parameters else [])
    place = data.draw(st.sampled_from(places))
    if place == "body":
        case.path_parameters = {name: existing[name] for name in case.path_parameters}
        case.body = poison_body(case, data)
        case.media_type = "application/json"
    elif place == "path":
        name = data.draw(st.sampled_from(sorted(case.path_parameters)))
        case.path_parameters = {**case.path_parameters, name: data.draw(NUL_TEXT)}
    else:
        case.query = poison_parameters(dict(case.query or {}), data)
    response = case.call_and_validate(
        headers={"Authorization": f"Token {admin_token}"}, checks=[not_a_server_error]
    )
    if place != "body":
        # The URL is checked before any view runs, whatever the view would have done with it.
        assert response.status_code == 400, (place, response.text[:300])
