"""The Decision Queue for real approvers: filters by amount and requester, bulk decisions,
delegation while away, and reminders with escalation (docs/decision-queue.md)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from pydantic import BaseModel

from decisions.models import Decision, Delegation
from decisions.selectors import decision_get_for, decision_queue
from decisions.services import (
    BULK_LIMIT,
    DecisionBulkTooLarge,
    DecisionNotAllowed,
    DelegationInvalid,
    decision_check_allowed,
    decision_decide,
    decisions_decide_many,
    delegation_give,
    delegation_revoke,
)
from decisions.waits import decision_open, decision_remind, decisions_remind_and_escalate
from missions.models import Mission
from missions.runtime import mission
from missions.services import mission_start, missions_tick
from tests.conftest import make_user
from tests.support.decisions import open_decision
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


class ReminderInput(BaseModel):
    amount: str = "0"


@mission("test_reminded_approval", version=1, input=ReminderInput, amount="amount")
def reminded_approval(ctx, data: ReminderInput) -> dict:
    decision = ctx.wait_for_decision(
        "approval",
        role="supervisor",
        title=f"Approve {data.amount}",
        remind_after=timedelta(hours=4),
        escalate_to="controller",
        timeout=timedelta(days=2),
    )
    return {"outcome": decision.outcome, "by": decision.decided_by}


def tiers(requester, *roles: str) -> list[Decision]:
    """Decisions of one mission, one per role (a refund's supervisor and finance tiers)."""
    row = Mission.objects.create(type="test_approval", version=1, started_by=requester)
    return [
        decision_open(
            mission=row,
            step_name=f"tier_{index}",
            role=role,
            title=f"Tier {index}",
            summary="",
            context={},
            options=["approved", "rejected"],
            due_at=None,
        )
        for index, role in enumerate(roles, start=1)
    ]


def away(user, delegate, *, days: int = 7) -> Delegation:
    now = timezone.now()
    return delegation_give(
        user=user,
        delegate_username=delegate.username,
        starts_at=now,
        ends_at=now + timedelta(days=days),
        reason="holiday",
    )


# Filters ---------------------------------------------------------------------------------


def test_the_queue_filters_by_amount_range_and_requester(supervisor):
    alice, bob = make_user("alice"), make_user("bob")
    small = open_decision(alice, "Small", context={"amount": "50.00"})
    large = open_decision(bob, "Large", context={"amount": 740})
    unpriced = open_decision(alice, "Unpriced", context={"amount": "n/a"})
    declared = mission_start(
        type="test_reminded_approval", input={"amount": "1200.50"}, started_by=bob
    ).mission
    declared = Decision.objects.get(mission=drain(declared))

    def titles(**filters) -> set[str]:
        return {d.title for d in decision_queue(user=supervisor, **filters)}

    assert titles() == {"Small", "Large", "Unpriced", declared.title}
    assert titles(amount_min=Decimal("100")) == {"Large", declared.title}
    assert titles(amount_max=Decimal("740")) == {"Small", "Large"}
    assert titles(amount_min=Decimal("50"), amount_max=Decimal("50")) == {"Small"}
    assert titles(requester="ALICE") == {"Small", "Unpriced"}
    assert titles(requester="bob", amount_max=Decimal("1000")) == {"Large"}
    assert {small.id, large.id, unpriced.id} <= {d.id for d in decision_queue(user=supervisor)}


def test_bad_filter_values_get_a_message_and_pages_keep_the_filters(client, supervisor):
    requester = make_user("requester")
    for number in range(25):
        open_decision(requester, f"Refund {number}", context={"amount": str(100 + number)})
    client.force_login(supervisor)
    response = client.get(reverse("decisions:queue"), {"amount_min": "lots"})
    assert response.status_code == 400
    assert "Amount from: enter a number such as 250.00" in response.content.decode()
    response = client.get(
        reverse("decisions:queue"), {"amount_min": "102", "requester": "requester"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "23 decisions" in page  # 102 to 124
    assert "amount_min=102" in page and "requester=requester" in page  # in the next page's link
    response = client.get(
        reverse("decisions:queue"), {"amount_min": "102", "requester": "requester", "page": "2"}
    )
    assert response.status_code == 200 and "Page 2 of 2" in response.content.decode()


# Bulk decisions --------------------------------------------------------------------------


def test_bulk_decides_each_one_by_the_rules_and_reports_each_result(supervisor, finance):
    requester = make_user("requester")
    mine = open_decision(requester, "Mine to decide")
    own = open_decision(supervisor, "Started by me")  # four eyes: not the requester
    taken = open_decision(requester, "Decided already")
    decision_decide(decision=taken, user=make_user("sam", "supervisor"), outcome="approved")
    foreign = open_decision(requester, "Finance only", role="finance")

    results = decisions_decide_many(
        decision_ids=[mine.id, own.id, taken.id, foreign.id, 999_999, mine.id],
        user=supervisor,
        outcome="rejected",
        comment="duplicate request",
    )

    by_id = {r.decision_id: r for r in results}
    assert len(results) == 5  # each once
    assert by_id[mine.id].decided and by_id[mine.id].message == "Rejected."
    assert not by_id[own.id].decided
    assert "You started this mission" in by_id[own.id].message
    assert by_id[taken.id].message.startswith("Already approved by sam")
    assert by_id[foreign.id].message == "No such decision, or not one you may see."
    assert by_id[999_999].message == "No such decision, or not one you may see."
    mine.refresh_from_db(), own.refresh_from_db()
    assert (mine.status, mine.comment, mine.decided_by) == (
        "rejected",
        "duplicate request",
        supervisor,
    )
    assert own.status == "pending"
    assert list(mine.audit.values_list("action", "username", "reason"))[-1] == (
        "rejected",
        "supervisor",
        "duplicate request",
    )


def test_bulk_keeps_four_eyes_across_the_tiers_of_one_mission():
    requester = make_user("requester")
    both = make_user("both", "supervisor", "finance")
    first, second = tiers(requester, "supervisor", "finance")
    results = decisions_decide_many(
        decision_ids=[first.id, second.id], user=both, outcome="approved"
    )
    assert [r.decided for r in results] == [True, False]
    assert "You already decided 'Tier 1' on this mission" in results[1].message
    second.refresh_from_db()
    assert second.is_pending


def test_bulk_has_a_cap_and_takes_only_approve_or_reject(supervisor):
    with pytest.raises(DecisionBulkTooLarge, match=f"At most {BULK_LIMIT} decisions at once"):
        decisions_decide_many(
            decision_ids=range(BULK_LIMIT + 1), user=supervisor, outcome="approved"
        )
    with pytest.raises(Exception, match="Outcome must be one of: approved, rejected"):
        decisions_decide_many(decision_ids=[1], user=supervisor, outcome="escalate")


def test_bulk_through_the_page_shows_each_result_and_refuses_too_many(client, supervisor):
    requester = make_user("requester")
    ok = open_decision(requester, "Fine one")
    own = open_decision(supervisor, "My own request")
    client.force_login(supervisor)
    response = client.post(
        reverse("decisions:bulk"),
        {"decision": [ok.id, own.id], "outcome": "approved", "comment": "batch"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 decided, 1 refused" in page
    assert "You started this mission, so someone else must decide it." in page
    response = client.post(
        reverse("decisions:bulk"),
        {"decision": [str(n) for n in range(BULK_LIMIT + 1)], "outcome": "approved"},
    )
    assert response.status_code == 413
    assert f"At most {BULK_LIMIT} decisions at once" in response.content.decode()
    response = client.post(reverse("decisions:bulk"), {"outcome": "approved"})
    assert (
        response.status_code == 400 and "Select at least one decision" in response.content.decode()
    )


# Delegation ------------------------------------------------------------------------------


def test_a_delegate_sees_and_decides_on_behalf_of_the_colleague_away(client, supervisor):
    requester, deputy = make_user("requester"), make_user("deputy")
    decision = open_decision(requester, "Refund A-1004")
    assert decision_get_for(user=deputy, decision_id=decision.id) is None

    away(supervisor, deputy)

    assert [d.id for d in decision_queue(user=deputy)] == [decision.id]
    assert decision_check_allowed(decision=decision, user=deputy) == supervisor
    client.force_login(deputy)
    page = client.get(reverse("decisions:queue")).content.decode()
    assert "You stand in for <strong>supervisor</strong>" in page and "Refund A-1004" in page
    page = client.get(reverse("decisions:detail", args=[decision.id])).content.decode()
    assert "You decide this on behalf of <strong>supervisor</strong>" in page
    decision_decide(decision=decision, user=deputy, outcome="approved", comment="covering")
    audit = decision.audit.get(action="approved")
    assert (audit.username, audit.after["on_behalf_of"]) == ("deputy", "supervisor")
    line = decision.mission.observations.get(kind="decision_made")
    assert "approved by deputy on behalf of supervisor" in line.message
    page = client.get(reverse("decisions:detail", args=[decision.id])).content.decode()
    assert "<td>deputy on behalf of supervisor</td>" in page  # the audit trail names both


def test_four_eyes_holds_for_a_delegate_and_for_whom_they_stand_in(supervisor):
    requester, deputy = make_user("requester"), make_user("deputy", "finance")
    away(supervisor, deputy)
    # The delegate requested it: not theirs to decide, delegation or not.
    own = open_decision(deputy, "Deputy's own request")
    with pytest.raises(DecisionNotAllowed, match="You started this mission"):
        decision_decide(decision=own, user=deputy, outcome="approved")
    # The colleague away requested it: the delegate may not decide it for them.
    theirs = open_decision(supervisor, "Supervisor's request")
    with pytest.raises(DecisionNotAllowed, match="supervisor started this mission"):
        decision_decide(decision=theirs, user=deputy, outcome="approved")
    # Two tiers of one mission: the delegate decides the first for the supervisor, and may
    # not sign the second (finance, their own role) as well.
    first, second = tiers(requester, "supervisor", "finance")
    decision_decide(decision=first, user=deputy, outcome="approved")
    with pytest.raises(DecisionNotAllowed, match="You already decided 'Tier 1'"):
        decision_decide(decision=second, user=deputy, outcome="approved")
    # Nor may the supervisor, whose authority decided the first tier through the delegate.
    supervisor.groups.add(second.role)
    with pytest.raises(DecisionNotAllowed, match="You already decided 'Tier 1'"):
        decision_decide(decision=second, user=supervisor, outcome="approved")


def test_a_revoked_or_ended_delegation_gives_nothing(supervisor):
    requester, deputy = make_user("requester"), make_user("deputy")
    decision = open_decision(requester)
    delegation = away(supervisor, deputy)
    assert decision_get_for(user=deputy, decision_id=decision.id) is not None
    with pytest.raises(DecisionNotAllowed, match="Only the person who gave"):
        delegation_revoke(delegation_id=delegation.id, user=deputy)
    delegation_revoke(delegation_id=delegation.id, user=supervisor)
    assert decision_get_for(user=deputy, decision_id=decision.id) is None
    with pytest.raises(DelegationInvalid, match="already ended or been revoked"):
        delegation_revoke(delegation_id=delegation.id, user=supervisor)
    later = away(supervisor, deputy)
    past = timezone.now() - timedelta(days=1)
    Delegation.objects.filter(id=later.id).update(starts_at=past, ends_at=past + timedelta(hours=1))
    with pytest.raises(DecisionNotAllowed, match="Only members of supervisor"):
        decision_decide(decision=decision, user=deputy, outcome="approved")


def test_a_delegation_needs_an_active_colleague_and_a_valid_period(supervisor):
    now = timezone.now()
    gone = make_user("gone", is_active=False)
    deputy = make_user("deputy")
    cases = [
        ("supervisor", now, now + timedelta(days=1), "cannot name yourself"),
        ("gone", now, now + timedelta(days=1), "No active user named “gone”"),
        ("nobody", now, now + timedelta(days=1), "No active user named “nobody”"),
        ("deputy", now + timedelta(days=2), now + timedelta(days=1), "must end after it starts"),
        ("deputy", now - timedelta(days=3), now - timedelta(days=1), "must end after it starts"),
        ("deputy", now, now + timedelta(days=400), "at most 366 days"),
    ]
    for username, starts_at, ends_at, message in cases:
        with pytest.raises(DelegationInvalid, match=message):
            delegation_give(
                user=supervisor, delegate_username=username, starts_at=starts_at, ends_at=ends_at
            )
    assert not Delegation.objects.exists() and gone and deputy


def test_the_delegation_page_gives_and_revokes(client, supervisor):
    make_user("deputy")
    client.force_login(supervisor)
    response = client.post(
        reverse("decisions:delegations"),
        {"delegate": "deputy", "starts_at": "", "ends_at": "2000-01-01T10:00", "reason": ""},
    )
    assert response.status_code == 400 and "must end after it starts" in response.content.decode()
    ends = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("decisions:delegations"),
        {"delegate": "deputy", "starts_at": "", "ends_at": ends, "reason": "holiday"},
    )
    assert response.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.delegate.username, delegation.reason) == ("deputy", "holiday")
    assert "deputy" in client.get(reverse("decisions:delegations")).content.decode()
    response = client.post(
        reverse("decisions:delegation_revoke", args=[delegation.id]), follow=True
    )
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None and response.status_code == 200


# Reminders and escalation ----------------------------------------------------------------


def test_an_overdue_decision_is_reminded_once_then_escalated_once(
    client, supervisor, mailoutbox, django_capture_on_commit_callbacks
):
    supervisor.email = "sup@example.com"
    supervisor.save()
    controller = make_user("carol", "controller", "finance", email="carol@example.com")
    requester = make_user("requester")
    mission_row = drain(
        mission_start(
            type="test_reminded_approval", input={"amount": "80"}, started_by=requester
        ).mission
    )
    decision = Decision.objects.get(mission=mission_row)
    opened_at = decision.created_at
    assert decision.escalation_role.name == "controller"
    assert decision.due_at - opened_at == pytest.approx(
        timedelta(hours=4), abs=timedelta(seconds=5)
    )
    assert decision_get_for(user=controller, decision_id=decision.id) is None
    mailoutbox.clear()

    assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=3)) == {
        "reminded": 0,
        "escalated": 0,
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=5)) == {
            "reminded": 1,
            "escalated": 0,
        }
    assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=6))["reminded"] == 0
    assert [m.to for m in mailoutbox] == [["sup@example.com"]]
    assert mailoutbox[0].subject.startswith("[StudioX] Reminder: a decision is waiting")

    # Escalation comes as long again after the reminder: four hours after 5 h, not before.
    assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=8))["escalated"] == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=9, minutes=1)) == {
            "reminded": 0,
            "escalated": 1,
        }
    assert decisions_remind_and_escalate(now=opened_at + timedelta(hours=20))["escalated"] == 0
    assert [m.to for m in mailoutbox][1:] == [["carol@example.com"]]
    assert list(decision.audit.values_list("action", flat=True)) == [
        "opened",
        "reminded",
        "escalated",
    ]

    # The escalation role now sees the decision in its queue and may decide it.
    decision.refresh_from_db()
    assert [d.id for d in decision_queue(user=controller)] == [decision.id]
    client.force_login(controller)  # two roles: the page merges each role's queue and this one
    page = client.get(reverse("decisions:queue")).content.decode()
    assert "Approve 80" in page and "Escalated to controller" in page
    decision_decide(decision=decision, user=controller, outcome="approved")
    mission_row = drain(Mission.objects.get(id=mission_row.id))
    assert mission_row.verdict == {"outcome": "approved", "by": "carol"}


def test_the_scheduler_tick_reminds_and_a_decision_without_reminder_is_left_alone(supervisor):
    requester = make_user("requester")
    plain = open_decision(requester, "Plain time-out", due_in=timedelta(hours=-1))
    with_reminder = drain(
        mission_start(type="test_reminded_approval", input={}, started_by=requester).mission
    )
    reminded = Decision.objects.get(mission=with_reminder)
    Decision.objects.filter(id=reminded.id).update(due_at=timezone.now() - timedelta(minutes=1))
    assert missions_tick()["reminded"] == 1
    plain.refresh_from_db(), reminded.refresh_from_db()
    assert plain.reminded_at is None and reminded.reminded_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_remind_exactly_once():
    requester = make_user("requester")
    make_user("supervisor", "supervisor")
    mission_row = drain(
        mission_start(type="test_reminded_approval", input={}, started_by=requester).mission
    )
    decision = Decision.objects.get(mission=mission_row)
    later = decision.due_at + timedelta(minutes=1)
    barrier, results = threading.Barrier(2), []

    def scheduler():
        try:
            barrier.wait(timeout=10)
            results.append(decision_remind(decision_id=decision.id, now=later))
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert decision.audit.filter(action="reminded").count() == 1


def test_reminder_settings_that_cannot_work_fail_the_mission_for_its_author():
    from missions.engine import _check_reminder

    with pytest.raises(ValueError, match="escalate_to needs remind_after"):
        _check_reminder(timeout=None, remind_after=None, escalate_to="controller")
    with pytest.raises(ValueError, match="shorter than timeout"):
        _check_reminder(
            timeout=timedelta(hours=1), remind_after=timedelta(hours=2), escalate_to=None
        )


def test_the_admin_lists_delegations_and_revokes_them(client, admin_user, supervisor):
    delegation = away(supervisor, make_user("deputy"))
    client.force_login(admin_user)
    listing = reverse("admin:decisions_delegation_changelist")
    assert "deputy" in client.get(listing, {"in_force": "yes"}).content.decode()
    client.post(listing, {"action": "revoke", "_selected_action": [delegation.id]})
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    page = client.get(reverse("admin:decisions_delegation_change", args=[delegation.id]))
    assert page.status_code == 200 and "Delete" not in page.content.decode()
