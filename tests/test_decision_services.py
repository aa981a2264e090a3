"""The Decision Queue's rules, enforced in the services (docs/decision-queue.md)."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from decisions.models import Decision
from decisions.services import (
    DecisionAlreadyDecided,
    DecisionInvalid,
    DecisionNotAllowed,
    decision_claim,
    decision_decide,
    decision_reassign,
    decision_release,
)
from missions.services import mission_cancel, mission_start, missions_tick
from tests.conftest import make_user
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def waiting_mission(requester, **input):
    mission = drain(mission_start(type="test_approval", input=input, started_by=requester).mission)
    assert (mission.status, mission.waiting_on) == ("waiting", "decision")
    return mission


def test_a_waiting_mission_puts_a_decision_in_the_role_queue(
    requester, supervisor, mailoutbox, django_capture_on_commit_callbacks
):
    supervisor.email = "sup@example.com"
    supervisor.save()
    with django_capture_on_commit_callbacks(execute=True):
        mission = waiting_mission(requester)
    decision = Decision.objects.get(mission=mission)
    assert (decision.role.name, decision.status, decision.title) == (
        "supervisor",
        "pending",
        "Approve 50",
    )
    assert decision.context == {"amount": "50"}
    assert [m.to for m in mailoutbox] == [["sup@example.com"]]
    assert list(decision.audit.values_list("action", flat=True)) == ["opened"]


def test_deciding_resumes_the_mission_with_the_outcome(
    requester, supervisor, django_capture_on_commit_callbacks
):
    mission = waiting_mission(requester)
    decision = Decision.objects.get(mission=mission)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision_decide(decision=decision, user=supervisor, outcome="approved", comment="fine")
    assert callbacks, "the mission is enqueued after commit"
    mission.refresh_from_db()
    assert mission.status == "running"
    mission = drain(mission)
    assert mission.verdict == {"outcome": "approved", "by": "supervisor", "comment": "fine"}
    assert mission.observations.filter(kind="decision_made").exists()
    assert list(decision.audit.values_list("action", "username")) == [
        ("opened", ""),
        ("approved", "supervisor"),
    ]


def test_only_members_of_the_role_may_decide(requester, outsider, finance):
    decision = Decision.objects.get(mission=waiting_mission(requester))
    for user in (outsider, finance):
        with pytest.raises(DecisionNotAllowed, match="Only members of supervisor"):
            decision_decide(decision=decision, user=user, outcome="approved")
    decision.refresh_from_db()
    assert decision.is_pending


def test_the_requester_may_not_decide_their_own_mission(supervisor):
    decision = Decision.objects.get(mission=waiting_mission(supervisor))
    with pytest.raises(DecisionNotAllowed, match="You started this mission"):
        decision_decide(decision=decision, user=supervisor, outcome="approved")


def test_one_person_may_not_decide_two_tiers_of_a_mission(requester):
    both = make_user("both", "supervisor", "finance")
    mission = waiting_mission(requester, amount="500")
    decision_decide(decision=Decision.objects.get(mission=mission), user=both, outcome="approved")
    mission = drain(mission)
    second = Decision.objects.get(mission=mission, step_name="finance_signoff")
    with pytest.raises(DecisionNotAllowed, match="another person must decide this tier"):
        decision_decide(decision=second, user=both, outcome="approved")


def test_an_outcome_that_is_not_an_option_is_refused(requester, supervisor):
    decision = Decision.objects.get(mission=waiting_mission(requester))
    with pytest.raises(DecisionInvalid, match="approved, rejected"):
        decision_decide(decision=decision, user=supervisor, outcome="maybe")


def test_the_second_decider_is_told_who_decided_first(requester, supervisor):
    other = make_user("other", "supervisor")
    decision = Decision.objects.get(mission=waiting_mission(requester))
    decision_decide(decision=decision, user=supervisor, outcome="rejected")
    with pytest.raises(DecisionAlreadyDecided, match="Already rejected by supervisor"):
        decision_decide(
            decision=Decision.objects.get(id=decision.id), user=other, outcome="approved"
        )


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_exactly_one_wins():
    requester = make_user("req")
    alice, bob = make_user("alice", "supervisor"), make_user("bob", "supervisor")
    decision = Decision.objects.get(mission=waiting_mission(requester))
    barrier, results = threading.Barrier(2), {}

    def attempt(user):
        try:
            barrier.wait(timeout=10)
            decision_decide(
                decision=Decision.objects.get(id=decision.id), user=user, outcome="approved"
            )
            results[user.username] = "won"
        except DecisionAlreadyDecided as exc:
            results[user.username] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(u,)) for u in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values())[-1] == "won"
    loser_message = [v for v in results.values() if v != "won"]
    assert len(loser_message) == 1
    decision.refresh_from_db()
    assert loser_message[0].startswith(f"Already approved by {decision.decided_by_name}")
    assert decision.audit.filter(action="approved").count() == 1


def test_a_time_out_expires_the_decision_and_the_mission_continues(requester):
    mission = waiting_mission(requester, timeout_seconds=3600)
    Decision.objects.filter(mission=mission).update(due_at=timezone.now())
    from missions import engine
    from missions.models import Mission, Step

    step = Step.objects.get(mission=mission, name="supervisor_approval")
    step.wait = {**step.wait, "until": timezone.now().isoformat()}
    step.save()
    Mission.objects.filter(id=mission.id).update(wake_at=timezone.now())
    engine._step_cache.clear()  # the test moved the due time behind the worker's back
    assert missions_tick()["woken"] == 1
    mission = drain(mission)
    assert mission.verdict == {"outcome": "expired", "by": None}
    assert Decision.objects.get(mission=mission).status == "expired"


def test_cancelling_the_mission_withdraws_its_pending_decisions(requester, admin_user):
    mission = waiting_mission(requester)
    mission_cancel(mission=mission, by=admin_user, reason="customer withdrew")
    decision = Decision.objects.get(mission=mission)
    assert decision.status == "withdrawn"
    assert decision.audit.filter(action="withdrawn", username="admin").exists()
    mission.refresh_from_db()
    assert mission.verdict == {"outcome": "cancelled", "by": "admin", "reason": "customer withdrew"}


def test_a_claimed_decision_may_not_be_claimed_by_a_colleague(requester, supervisor):
    other = make_user("other", "supervisor")
    decision = Decision.objects.get(mission=waiting_mission(requester))
    decision_claim(decision=decision, user=supervisor)
    with pytest.raises(DecisionNotAllowed, match="supervisor has already claimed this"):
        decision_claim(decision=decision, user=other)


def test_only_the_person_who_claimed_may_release_the_claim(requester, supervisor):
    other = make_user("other", "supervisor")
    decision = Decision.objects.get(mission=waiting_mission(requester))
    decision_claim(decision=decision, user=supervisor)
    with pytest.raises(DecisionNotAllowed, match="Only the person who claimed"):
        decision_release(decision=decision, user=other)
    decision_release(decision=decision, user=supervisor)
    decision.refresh_from_db()
    assert decision.claimed_by is None


def test_reassigning_needs_an_administrator_and_a_reason_and_is_audited(
    requester, supervisor, admin_user
):
    other = make_user("other", "supervisor")
    decision = Decision.objects.get(mission=waiting_mission(requester))
    with pytest.raises(DecisionInvalid, match="needs a reason"):
        decision_reassign(decision=decision, to_user=other, by=admin_user, reason=" ")
    with pytest.raises(DecisionNotAllowed, match="Only an administrator"):
        decision_reassign(decision=decision, to_user=other, by=supervisor, reason="holiday")
    decision_reassign(
        decision=decision, to_user=other, by=admin_user, reason="supervisor on holiday"
    )
    decision.refresh_from_db()
    assert decision.claimed_by == other
    actions = list(decision.audit.values_list("action", "reason"))
    assert ("reassigned", "supervisor on holiday") in actions


def test_a_superuser_outside_the_role_may_not_decide(requester):
    boss = make_user("boss", is_staff=True, is_superuser=True)
    decision = Decision.objects.get(mission=waiting_mission(requester))
    with pytest.raises(DecisionNotAllowed, match="Only members of supervisor"):
        decision_decide(decision=decision, user=boss, outcome="approved")


def test_the_rail_says_who_decided_what_in_business_terms(requester, supervisor):
    mission = waiting_mission(requester, amount="75")
    decision_decide(
        decision=Decision.objects.get(mission=mission),
        user=supervisor,
        outcome="rejected",
        comment="duplicate request",
    )
    line = mission.observations.get(kind="decision_made")
    assert line.message == "Approve 75: rejected by supervisor — “duplicate request”"
    assert line.data == {"outcome": "rejected", "by": "supervisor", "role": "supervisor"}


def test_releasing_an_unclaimed_or_decided_decision_says_why(requester, supervisor):
    decision = Decision.objects.get(mission=waiting_mission(requester))
    with pytest.raises(DecisionInvalid, match="Nobody has claimed this decision"):
        decision_release(decision=decision, user=supervisor)
    decision_claim(decision=decision, user=supervisor)
    decision_decide(decision=decision, user=supervisor, outcome="approved")
    with pytest.raises(DecisionAlreadyDecided, match="Already approved by supervisor"):
        decision_release(decision=decision, user=supervisor)


def test_the_audit_trail_records_whose_claim_an_admin_released(requester, supervisor, admin_user):
    decision = Decision.objects.get(mission=waiting_mission(requester))
    decision_claim(decision=decision, user=supervisor)
    decision_release(decision=decision, user=admin_user)
    claimed, released = decision.audit.filter(action__in=["claimed", "released"]).order_by("id")
    assert (claimed.username, claimed.after) == ("supervisor", {"claimed_by": "supervisor"})
    assert (released.username, released.before) == ("admin", {"claimed_by": "supervisor"})


def test_the_scheduler_wakes_a_mission_whose_decision_was_settled_without_waking_it(
    requester, supervisor
):
    mission = waiting_mission(requester)
    # As if the wake-up after commit was lost: the decision is settled, the mission still waits.
    Decision.objects.filter(mission=mission).update(
        status="approved", outcome="approved", decided_by=supervisor, decided_by_name="supervisor"
    )
    assert missions_tick()["decisions"] == 1
    mission = drain(mission)
    assert mission.verdict["outcome"] == "approved"
    assert missions_tick()["decisions"] == 0
