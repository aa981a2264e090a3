"""The calls the engine makes inside its checkpoint: decision_open, decision_outcome,
decision_expire, decisions_withdraw — exactly as missions/engine.py uses them."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from decisions.models import Decision
from decisions.services import DecisionAlreadyDecided, decision_decide
from decisions.waits import decision_expire, decision_open, decision_outcome, decisions_withdraw
from tests.conftest import make_user
from tests.support.decisions import open_decision

pytestmark = pytest.mark.django_db


def opened(requester, **decision) -> Decision:
    return open_decision(
        requester,
        "Refund 40.00 EUR for A-1",
        summary="Within the window",
        context={"amount": "40.00 EUR"},
        due_in=timedelta(days=2),
        **decision,
    )


def test_opening_twice_for_the_same_step_gives_the_same_decision(requester):
    first = opened(requester)
    again = decision_open(
        mission=first.mission,
        step_name="approval",
        role="supervisor",
        title="another title",
        summary="",
        context={},
        options=["approved", "rejected"],
        due_at=None,
    )
    assert again.id == first.id and again.title == "Refund 40.00 EUR for A-1"
    assert Decision.objects.filter(mission=first.mission).count() == 1
    assert list(first.audit.values_list("action", flat=True)) == ["opened"]


def test_a_role_that_does_not_exist_yet_is_created(requester):
    decision = opened(requester, role="legal")
    assert Group.objects.filter(name="legal").exists() and decision.role.name == "legal"


def test_the_outcome_is_none_while_pending_then_what_was_decided(requester, supervisor):
    decision = opened(requester)
    assert decision_outcome(mission_id=decision.mission_id, step_name="approval") is None
    decision_decide(decision=decision, user=supervisor, outcome="approved", comment="ok")
    result = decision_outcome(mission_id=decision.mission_id, step_name="approval")
    assert result["outcome"] == "approved" and result["comment"] == "ok"
    assert result["decided_by"] == "supervisor"
    assert result["decided_at"] == Decision.objects.get(id=decision.id).decided_at.isoformat()


def test_a_custom_option_is_stored_as_decided_with_its_outcome(requester, supervisor):
    decision = opened(requester, options=("approved", "rejected", "escalate"))
    decision_decide(decision=decision, user=supervisor, outcome="escalate")
    decision.refresh_from_db()
    assert (decision.status, decision.outcome) == ("decided", "escalate")
    assert decision_outcome(mission_id=decision.mission_id, step_name="approval")["outcome"] == (
        "escalate"
    )
    assert decision.audit.filter(action="decided", username="supervisor").exists()
    with pytest.raises(DecisionAlreadyDecided, match=r"Already decided \(escalate\) by supervisor"):
        decision_decide(decision=decision, user=supervisor, outcome="approved")


def test_expiry_turns_a_pending_decision_into_expired(requester):
    decision = opened(requester)
    result = decision_expire(mission_id=decision.mission_id, step_name="approval")
    assert (result["outcome"], result["decided_by"]) == ("expired", None)
    decision.refresh_from_db()
    assert decision.status == "expired" and not decision.is_overdue
    assert decision.audit.filter(action="expired").count() == 1


def test_expiry_after_someone_decided_returns_their_decision(requester, supervisor):
    decision = opened(requester)
    decision_decide(decision=decision, user=supervisor, outcome="rejected", comment="no receipt")
    result = decision_expire(mission_id=decision.mission_id, step_name="approval")
    assert (result["outcome"], result["decided_by"], result["comment"]) == (
        "rejected",
        "supervisor",
        "no receipt",
    )
    assert Decision.objects.get(id=decision.id).status == "rejected"
    assert not decision.audit.filter(action="expired").exists()


def test_nobody_may_decide_an_expired_decision(requester, supervisor):
    decision = opened(requester)
    decision_expire(mission_id=decision.mission_id, step_name="approval")
    with pytest.raises(DecisionAlreadyDecided, match="Already expired"):
        decision_decide(decision=decision, user=supervisor, outcome="approved")


def test_withdrawing_leaves_decided_ones_alone(requester, supervisor, admin_user):
    first = opened(requester, step="first")
    second = decision_open(
        mission=first.mission,
        step_name="second",
        role="finance",
        title="Sign off",
        summary="",
        context={},
        options=["approved", "rejected"],
        due_at=None,
    )
    decision_decide(decision=first, user=supervisor, outcome="approved")
    assert decisions_withdraw(mission_id=first.mission_id, by=admin_user) == 1
    assert Decision.objects.get(id=first.id).status == "approved"
    second.refresh_from_db()
    assert second.status == "withdrawn"
    assert decision_outcome(mission_id=first.mission_id, step_name="second")["outcome"] == (
        "withdrawn"
    )
    with pytest.raises(DecisionAlreadyDecided, match="the mission was cancelled"):
        decision_decide(decision=second, user=make_user("finance2", "finance"), outcome="approved")


def test_overdue_means_pending_and_past_its_due_time(requester, supervisor):
    decision = opened(requester)
    assert not decision.is_overdue
    decision.due_at = timezone.now() - timedelta(minutes=1)
    assert decision.is_overdue
    decision_decide(decision=decision, user=supervisor, outcome="approved")
    decision.refresh_from_db()
    decision.due_at = timezone.now() - timedelta(minutes=1)
    assert not decision.is_overdue
