"""A claim blocks every other approver, superusers included, in the service, the API and the
page; an administrator takes over only through a recorded release or reassignment."""

import pytest

from decisions.models import Decision
from decisions.services import (
    DecisionClaimedByOther,
    decision_claim,
    decision_decide,
    decision_reassign,
    decision_release,
)
from tests.conftest import make_user
from tests.support.api import api_client, fresh_throttles, waiting_for_decision  # noqa: F401
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def claimed_by(user, requester) -> Decision:
    _, decision = waiting_for_decision(requester)
    return decision_claim(decision=decision, user=user)


def test_a_colleague_and_a_superuser_may_not_decide_a_claimed_decision(
    requester, supervisor, admin_user
):
    colleague = make_user("colleague", "supervisor")
    decision = claimed_by(supervisor, requester)
    for other in (colleague, admin_user):
        with pytest.raises(DecisionClaimedByOther, match="Claimed by supervisor"):
            decision_decide(decision=decision, user=other, outcome="approved")
    decision.refresh_from_db()
    assert (decision.status, decision.claimed_by) == ("pending", supervisor)
    assert (
        decision_decide(decision=decision, user=supervisor, outcome="approved").status == "approved"
    )


def test_an_admin_takes_over_a_claim_only_by_a_recorded_release_or_reassignment(
    requester, supervisor, admin_user
):
    released = claimed_by(supervisor, requester)
    with pytest.raises(DecisionClaimedByOther):
        decision_decide(decision=released, user=admin_user, outcome="approved")
    decision_release(decision=released, user=admin_user)
    assert (
        decision_decide(decision=released, user=admin_user, outcome="approved").status == "approved"
    )
    assert released.audit.filter(action="released", username="admin").exists()

    reassigned = claimed_by(supervisor, requester)
    decision_reassign(decision=reassigned, to_user=admin_user, by=admin_user, reason="urgent")
    assert (
        decision_decide(decision=reassigned, user=admin_user, outcome="rejected").status
        == "rejected"
    )
    audit = reassigned.audit.get(action="reassigned")
    assert (audit.before, audit.after) == ({"claimed_by": "supervisor"}, {"claimed_by": "admin"})


def test_the_api_refuses_a_claimed_decision_to_others_with_403(requester, supervisor, admin_user):
    decision = claimed_by(supervisor, requester)
    response = api_client(admin_user).post(
        f"/api/decisions/{decision.id}/decide/", {"outcome": "approved"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Claimed by supervisor")
    assert Decision.objects.get(id=decision.id).status == "pending"


def test_the_page_shows_a_colleague_who_holds_the_claim_and_no_buttons(requester, supervisor):
    colleague = make_user("colleague", "supervisor")
    decision = claimed_by(supervisor, requester)
    client = logged_in(colleague)

    page = client.get(f"/decisions/{decision.id}/").content.decode()
    assert "Claimed by <strong>supervisor</strong>" in page
    assert "only they may decide this" in page
    assert 'value="approved"' not in page

    response = client.post(f"/decisions/{decision.id}/decide/", {"outcome": "approved"}, **HTMX)
    assert response.status_code == 403
    assert "Claimed by supervisor" in response.content.decode()
    assert Decision.objects.get(id=decision.id).status == "pending"
