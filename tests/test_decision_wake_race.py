"""Deciding while a worker re-enters the mission's wait (after a pause, a lost lease) must
still resume the mission: the decision and the worker's "still waiting" checkpoint take the
mission's row lock in turn, so one of them sees the other."""

import threading

import pytest
from django.db import connection, transaction

from decisions.models import Decision
from decisions.services import decision_decide
from missions.engine import mission_advance
from missions.models import Mission
from missions.services import mission_pause, mission_resume, mission_start
from tests.conftest import make_user
from tests.support.engine import drain


@pytest.mark.django_db(transaction=True)
def test_a_decision_committed_while_a_worker_re_enters_the_wait_resumes_the_mission():
    requester, supervisor = make_user("req"), make_user("sup", "supervisor")
    mission = drain(mission_start(type="test_approval", input={}, started_by=requester).mission)
    decision = Decision.objects.get(mission=mission)
    mission_pause(mission=mission, by=None)
    mission_resume(mission=mission, by=None)  # runnable again, its decision still pending
    decided, worker_started = threading.Event(), threading.Event()

    def approver() -> None:
        try:
            with transaction.atomic():
                decision_decide(
                    decision=decision, user=supervisor, outcome="approved", comment="ok"
                )
                decided.set()
                # Commit only after the worker began its pass: without the mission's row
                # lock the worker would read "pending" and checkpoint the wait again.
                worker_started.wait(timeout=10)
                threading.Event().wait(0.5)
        finally:
            connection.close()

    thread = threading.Thread(target=approver)
    thread.start()
    assert decided.wait(timeout=10)
    worker_started.set()
    mission_advance(mission_id=mission.id, worker="test-worker")
    thread.join(timeout=30)
    mission = drain(Mission.objects.get(id=mission.id))
    assert mission.status == "succeeded", (mission.status, mission.waiting_on)
    assert mission.verdict == {"outcome": "approved", "by": "sup", "comment": "ok"}
