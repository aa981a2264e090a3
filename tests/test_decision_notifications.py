"""Eligible approvers are e-mailed after commit, never before, and never the requester or the
decider of an earlier tier; a dead mail server does not fail the mission's step."""

import pytest
from django.test import override_settings

from decisions.models import Decision
from decisions.services import decision_decide
from decisions.waits import decision_open
from missions.models import Mission
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def open_for(mission: Mission, step: str, role: str) -> Decision:
    return decision_open(
        mission=mission,
        step_name=step,
        role=role,
        title=f"{role} sign-off for A-7",
        summary="Above the threshold",
        context={},
        options=["approved", "rejected"],
        due_at=None,
    )


@override_settings(STUDIOX_BASE_URL="http://testserver-base")
def test_role_members_are_mailed_only_once_the_transaction_commits(
    mailoutbox, django_capture_on_commit_callbacks
):
    requester = make_user("req", "supervisor", email="req@example.com")
    make_user("sup", "supervisor", email="sup@example.com")
    make_user("gone", "supervisor", email="gone@example.com", is_active=False)
    make_user("quiet", "supervisor")  # no address
    make_user("fin", "finance", email="fin@example.com")
    mission = Mission.objects.create(type="test_approval", version=1, started_by=requester)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        decision = open_for(mission, "approval", "supervisor")
        assert mailoutbox == []  # not before commit
    assert callbacks
    assert [m.to for m in mailoutbox] == [["sup@example.com"]]  # not the requester
    assert mailoutbox[0].subject == "[StudioX] Decision needed: supervisor sign-off for A-7"
    assert f"http://testserver-base/decisions/{decision.id}/" in mailoutbox[0].body


def test_whoever_decided_an_earlier_tier_is_not_mailed_for_the_next(
    mailoutbox, django_capture_on_commit_callbacks
):
    requester = make_user("req")
    both = make_user("both", "supervisor", "finance", email="both@example.com")
    make_user("fin", "finance", email="fin@example.com")
    mission = Mission.objects.create(type="test_approval", version=1, started_by=requester)
    first = open_for(mission, "approval", "supervisor")
    decision_decide(decision=first, user=both, outcome="approved")
    with django_capture_on_commit_callbacks(execute=True):
        open_for(mission, "signoff", "finance")
    assert [m.to for m in mailoutbox] == [["fin@example.com"]]


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    EMAIL_HOST="127.0.0.1",
    EMAIL_PORT=9,  # discard: nothing listens, the connection is refused
    EMAIL_TIMEOUT=2,
)
def test_a_mail_server_that_is_down_does_not_fail_the_opening(django_capture_on_commit_callbacks):
    make_user("sup", "supervisor", email="sup@example.com")
    mission = Mission.objects.create(type="test_approval", version=1, started_by=make_user("req"))
    with django_capture_on_commit_callbacks(execute=True):
        decision = open_for(mission, "approval", "supervisor")
    assert Decision.objects.get(id=decision.id).is_pending
