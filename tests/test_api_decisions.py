"""The Decision Queue through the API: the caller's decisions, deciding one (docs/api.md)."""

import pytest

from decisions.models import Decision
from tests.support.api import api_client, fresh_throttles, waiting_for_decision  # noqa: F401
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def decide(user, decision, outcome="approved", comment="ok"):
    return api_client(user).post(
        f"/api/decisions/{decision.id}/decide/",
        {"outcome": outcome, "comment": comment},
        format="json",
    )


def test_the_list_holds_the_pending_decisions_of_my_roles(requester, supervisor, finance):
    mission, decision = waiting_for_decision(requester)
    response = api_client(supervisor).get("/api/decisions/", {"status": "pending"})
    assert response.status_code == 200
    [item] = response.json()
    assert (item["id"], item["mission"], item["role"]) == (
        decision.id,
        str(mission.id),
        "supervisor",
    )
    assert (item["title"], item["status"], item["options"]) == (
        "Approve A-1",
        "pending",
        ["approved", "rejected"],
    )
    assert item["context"] == {"n": 1}
    assert api_client(finance).get("/api/decisions/").json() == []
    assert api_client(requester).get("/api/decisions/").json() == []


def test_deciding_approves_and_resumes_the_mission(requester, supervisor):
    mission, decision = waiting_for_decision(requester)
    response = decide(supervisor, decision, comment="within policy")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["outcome"], body["decided_by"], body["comment"]) == (
        "approved",
        "approved",
        "supervisor",
        "within policy",
    )
    mission.refresh_from_db()
    assert mission.status == "running"
    assert drain(mission).verdict == {"outcome": "approved", "by": "supervisor"}
    decided = api_client(supervisor).get("/api/decisions/", {"status": "approved"}).json()
    assert [d["id"] for d in decided] == [decision.id]
    assert api_client(supervisor).get("/api/decisions/").json() == []


def test_a_second_decision_is_a_409_naming_who_decided_first(requester, supervisor, admin_user):
    _, decision = waiting_for_decision(requester)
    assert decide(supervisor, decision).status_code == 200
    late = decide(admin_user, decision, outcome="rejected")
    assert late.status_code == 409
    assert "supervisor" in late.json()["detail"]
    decision.refresh_from_db()
    assert decision.outcome == "approved"


def test_deciding_is_refused_outside_the_role_and_on_ones_own_mission(
    requester, supervisor, finance, admin_user
):
    _, decision = waiting_for_decision(requester)
    outside = decide(finance, decision)
    assert outside.status_code == 404  # a decision outside one's roles is not even visible
    _, own = waiting_for_decision(supervisor, subject="B-2")
    refused = decide(supervisor, own)
    assert refused.status_code == 403
    assert "someone else" in refused.json()["detail"]
    assert Decision.objects.filter(status="pending").count() == 2


def test_the_requester_sees_but_may_not_decide(requester):
    _, decision = waiting_for_decision(requester)
    assert api_client(requester).get(f"/api/decisions/{decision.id}/").status_code == 200
    response = decide(requester, decision)
    assert response.status_code == 403
    assert "supervisor" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [({"outcome": "maybe"}, "outcome"), ({}, "outcome")])
def test_a_bad_outcome_is_a_400(requester, supervisor, body, field):
    _, decision = waiting_for_decision(requester)
    response = api_client(supervisor).post(
        f"/api/decisions/{decision.id}/decide/", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["errors"]
    decision.refresh_from_db()
    assert decision.status == "pending"


@pytest.mark.parametrize("decision_id", ["999999", "abc", "99999999999999999999999", "³", "-1"])
def test_an_unknown_decision_is_a_404(supervisor, decision_id):
    client = api_client(supervisor)
    assert client.get(f"/api/decisions/{decision_id}/").status_code == 404
    decide = client.post(
        f"/api/decisions/{decision_id}/decide/", {"outcome": "approved"}, format="json"
    )
    assert decide.status_code == 404
    assert decision_id in decide.json()["detail"]


def test_a_bad_status_filter_is_a_400(supervisor):
    response = api_client(supervisor).get("/api/decisions/", {"status": "maybe"})
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_cancelling_a_mission_withdraws_its_decision(requester, supervisor):
    mission, decision = waiting_for_decision(requester)
    response = api_client(requester).post(f"/api/missions/{mission.id}/cancel/", {}, format="json")
    assert response.status_code == 200
    decision.refresh_from_db()
    assert decision.status == "withdrawn"
    assert decide(supervisor, decision).status_code == 409
