"""Who may do what through the API: every persona against every endpoint (docs/api.md)."""

import pytest

from tests.support.api import api_client, failed, fresh_throttles, waiting_for_decision  # noqa: F401
from tests.support.engine import started

pytestmark = pytest.mark.django_db

PERSONAS = ["anonymous", "requester", "supervisor", "finance", "admin_user"]

# action -> status for each persona, in PERSONAS order. The missions belong to `requester`;
# the decision is for the supervisor role. 404 means "not even visible to you".
MATRIX = {
    "list mission types": (401, 200, 200, 200, 200),
    "start a mission": (401, 201, 201, 201, 201),
    "list missions": (401, 200, 200, 200, 200),
    "read a mission": (401, 200, 404, 404, 200),
    "read a mission with a decision for my role": (401, 200, 200, 404, 200),
    "read its steps": (401, 200, 404, 404, 200),
    "read its rail": (401, 200, 404, 404, 200),
    "cancel it": (401, 200, 404, 404, 200),
    "retry it": (401, 403, 404, 404, 200),
    "send an event": (401, 403, 403, 403, 202),
    "list my decisions": (401, 200, 200, 200, 200),
    "decide": (401, 403, 200, 404, 200),
}


def act(action: str, client, requester):
    if action == "list mission types":
        return client.get("/api/mission-types/")
    if action == "start a mission":
        return client.post("/api/missions/", {"type": "test_count", "input": {"steps": 1}})
    if action == "list missions":
        return client.get("/api/missions/")
    if action == "send an event":
        return client.post("/api/events/", {"event": "shipped", "key": "x"})
    if action == "list my decisions":
        return client.get("/api/decisions/")
    if action == "retry it":
        return client.post(f"/api/missions/{failed(requester).id}/retry/")
    if action in ("read a mission with a decision for my role", "decide"):
        mission, decision = waiting_for_decision(requester)
        if action == "decide":
            return client.post(f"/api/decisions/{decision.id}/decide/", {"outcome": "approved"})
        return client.get(f"/api/missions/{mission.id}/")
    mission = started(requester)
    path = {
        "read a mission": "",
        "read its steps": "steps/",
        "read its rail": "observations/",
        "cancel it": "cancel/",
    }[action]
    url = f"/api/missions/{mission.id}/{path}"
    return client.post(url) if action == "cancel it" else client.get(url)


@pytest.mark.parametrize("action", list(MATRIX))
@pytest.mark.parametrize("persona", PERSONAS)
def test_the_permission_matrix(persona, action, request, requester):
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    client = api_client(user)
    client.default_format = "json"
    expected = MATRIX[action][PERSONAS.index(persona)]
    response = act(action, client, requester)
    assert response.status_code == expected, (persona, action, response.json())
    assert response.json() is not None


def test_each_persona_lists_only_the_missions_it_may_see(
    requester, supervisor, finance, admin_user
):
    own = started(requester)
    with_decision, _ = waiting_for_decision(requester)
    started(finance)

    def listed(user) -> set[str]:
        return {m["id"] for m in api_client(user).get("/api/missions/").json()["results"]}

    assert listed(requester) == {str(own.id), str(with_decision.id)}
    assert listed(supervisor) == {str(with_decision.id)}
    assert len(listed(finance)) == 1 and str(own.id) not in listed(finance)
    assert len(listed(admin_user)) == 3
