"""The customer refund end to end: real workers, the scheduler, and the real payments MCP
server (spawned over stdio by the worker) with its own ledger (docs/authoring.md)."""

import signal
import sqlite3

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from decisions.models import Decision
from decisions.services import decision_decide
from missions.models import Mission
from missions.services import mission_start
from tests.support.processes import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture
def refunds(tmp_path, processes):
    """Seeded demo users and knowledge, a fresh ledger, a worker and the scheduler."""
    call_command("seed", password="pw-demo-123", verbosity=0)
    env = {
        "DEMO_PAYMENTS_LEDGER": str(tmp_path / "ledger.sqlite3"),
        "STUDIOX_REFUND_COOLING_OFF_SECONDS": "0.2",
        "STUDIOX_MISSION_MODULES": "tests.missions_for_tests,tests.refund_faults",
        "STUDIOX_TEST_CRASH_AFTER_TOOL": str(tmp_path / "crash-after-payment"),
    }
    processes.scheduler(**env)
    return {
        "env": env,
        "ledger": tmp_path / "ledger.sqlite3",
        "crash": tmp_path / "crash-after-payment",
    }


def start(order_id: str, amount: str) -> Mission:
    requester = User.objects.get(username="requester")
    return mission_start(
        type="customer_refund",
        input={"order_id": order_id, "amount": amount, "reason": "arrived damaged"},
        started_by=requester,
    ).mission


def decision_for(mission: Mission, step: str) -> Decision:
    return eventually(
        lambda: Decision.objects.filter(mission=mission, step_name=step, status="pending").first(),
        what=f"the {step} decision",
    )


def final(mission: Mission) -> Mission:
    def done():
        mission.refresh_from_db()
        return mission.is_final

    eventually(done, what="the verdict", attempts=1200)
    return mission


def ledger_rows(path) -> list[tuple]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT order_id, idempotency_key FROM refunds").fetchall()
    return [row for row in rows if not row[1].startswith("seed:")]  # refunds before StudioX


def approve(mission: Mission, step: str, username: str, comment: str = "ok") -> None:
    decision_decide(
        decision=decision_for(mission, step),
        user=User.objects.get(username=username),
        outcome="approved",
        comment=comment,
    )


def test_a_small_refund_needs_only_the_supervisor(refunds, processes):
    processes.worker(**refunds["env"])
    mission = start("A-1001", "120.00")
    approve(mission, "supervisor_approval", "supervisor", "customer sent photos")
    mission = final(mission)
    assert mission.verdict["outcome"] == "refunded", mission.error
    assert mission.verdict["amount"] == "120.00"
    assert mission.verdict["approvals"] == [
        {"role": "supervisor", "by": "supervisor", "comment": "customer sent photos"}
    ]
    assert mission.verdict["payment"]["order_id"] == "A-1001"
    assert not Decision.objects.filter(mission=mission, step_name="finance_signoff").exists()
    assert ledger_rows(refunds["ledger"]) == [("A-1001", f"{mission.id}:issue_refund")]


def test_above_the_threshold_finance_signs_off_too(refunds, processes):
    processes.worker(**refunds["env"])
    mission = start("A-1004", "740.00")
    approve(mission, "supervisor_approval", "supervisor")
    approve(mission, "finance_signoff", "finance")
    mission = final(mission)
    assert mission.verdict["outcome"] == "refunded", mission.error
    assert [a["role"] for a in mission.verdict["approvals"]] == ["supervisor", "finance"]
    assert len(ledger_rows(refunds["ledger"])) == 1
    refund_id = mission.verdict["payment"]["refund_id"]
    assert (mission.outcome, mission.summary) == (
        "refunded",
        f"Refunded 740.00 EUR for A-1004 ({refund_id}); approved by supervisor and finance",
    )
    titles = dict(mission.steps.values_list("name", "title"))
    assert titles["retrieve_order"] == "Looked up order A-1004"
    assert titles["issue_refund"] == f"Paid refund {refund_id} of 740.00 EUR for A-1004"


def test_a_rejected_refund_pays_nothing(refunds, processes):
    processes.worker(**refunds["env"])
    mission = start("A-1001", "60.00")
    decision = decision_for(mission, "supervisor_approval")
    decision_decide(
        decision=decision,
        user=User.objects.get(username="supervisor"),
        outcome="rejected",
        comment="no evidence of damage",
    )
    mission = final(mission)
    summary = (
        "Rejected by supervisor (supervisor): refund of 60.00 EUR for A-1001: "
        "“no evidence of damage”"
    )
    assert mission.verdict == {
        "outcome": "rejected",
        "summary": summary,
        "order_id": "A-1001",
        "by": "supervisor",
        "role": "supervisor",
        "comment": "no evidence of damage",
    }
    assert (mission.outcome, mission.summary) == ("rejected", summary)
    assert ledger_rows(refunds["ledger"]) == []


def test_a_refund_outside_the_policy_is_refused_without_asking_anyone(refunds, processes):
    processes.worker(**refunds["env"])
    mission = final(start("A-1002", "89.90"))
    assert mission.verdict["outcome"] == "rejected_by_policy"
    assert "outside the 30-day refund window" in mission.verdict["reasons"][0]
    assert "Refund policy § Time window" in mission.verdict["citations"]
    assert not Decision.objects.filter(mission=mission).exists()


def test_a_worker_killed_after_paying_and_before_its_checkpoint_pays_once(refunds, processes):
    refunds["crash"].touch()
    first = processes.worker("first", **refunds["env"])
    second = processes.worker("second", **refunds["env"])
    mission = start("A-1001", "120.00")
    approve(mission, "supervisor_approval", "supervisor")
    eventually(lambda: not refunds["crash"].exists(), what="the payment, then the kill")
    eventually(lambda: -signal.SIGKILL in (first.poll(), second.poll()), what="a killed worker")
    mission = final(mission)
    assert mission.verdict["outcome"] == "refunded", mission.error
    assert ledger_rows(refunds["ledger"]) == [("A-1001", f"{mission.id}:issue_refund")]
    assert mission.verdict["payment"]["duplicate"] is True  # the retry met the first payment
    step = mission.steps.get(name="issue_refund")
    assert step.attempts == 2
