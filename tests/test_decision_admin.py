"""Django admin for decisions: filters, read-only audit, and reassignment with a reason."""

import pytest

from decisions.models import Decision
from missions.services import mission_start
from tests.conftest import make_user
from tests.support.engine import drain
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def decision(requester) -> Decision:
    mission = drain(mission_start(type="test_approval", input={}, started_by=requester).mission)
    return Decision.objects.get(mission=mission)


def test_the_changelist_filters_overdue_and_by_status(decision, admin_user):
    client = logged_in(admin_user)
    assert (
        "Approve 50"
        in client.get("/admin/decisions/decision/?status__exact=pending").content.decode()
    )
    assert "Approve 50" not in client.get("/admin/decisions/decision/?overdue=yes").content.decode()
    page = client.get(f"/admin/decisions/decision/{decision.id}/change/").content.decode()
    assert "Opened" in page  # the audit trail inline


def test_an_admin_reassigns_with_a_recorded_reason(decision, admin_user):
    colleague = make_user("colleague", "supervisor")
    client = logged_in(admin_user)
    form = client.post(
        "/admin/decisions/decision/", {"action": "reassign", "_selected_action": [decision.id]}
    )
    assert "The reason goes into each audit trail" in form.content.decode()
    client.post(
        "/admin/decisions/decision/",
        {
            "action": "reassign",
            "_selected_action": [decision.id],
            "apply": "1",
            "to_user": colleague.id,
            "reason": "supervisor is on leave",
        },
    )
    decision.refresh_from_db()
    assert decision.claimed_by == colleague
    assert decision.audit.filter(action="reassigned", reason="supervisor is on leave").exists()
