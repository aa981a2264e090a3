"""The refund's money figures come from the payments system of record (the bundled demo
payments MCP server, spawned over stdio with its own ledger), are read again before paying,
and a refund that no longer fits ends with a business verdict, never a failed mission.

The end-to-end cases run on real workers and the scheduler; the cases that need a precise
interleaving (a refund paid while a mission cools off, two missions between their last read
and their payment) drive the engine in-process, exactly as a worker does
(docs/authoring.md, "Driving it in-process")."""

import re
import signal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from decisions.models import Decision
from decisions.services import decision_decide
from integrations.mcp_client import call_tool
from missions.engine import Outcome, mission_advance
from missions.models import Mission, Step
from missions.services import mission_start, missions_tick
from observations.models import Observation
from tests.support.engine import drain, make_due
from tests.support.pages import logged_in
from tests.support.processes import eventually

READ_AT = re.compile(r"payments, read at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    """Seeded demo users and knowledge, and a fresh payments ledger for every payments
    server this test spawns (in-process through the MCP client, or from a worker)."""
    call_command("seed", password="pw-demo-123", verbosity=0)
    path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("DEMO_PAYMENTS_LEDGER", str(path))  # the MCP client passes it on
    return path


def user(name: str) -> User:
    return User.objects.get(username=name)


def start(order_id: str, amount: str) -> Mission:
    return mission_start(
        type="customer_refund",
        input={"order_id": order_id, "amount": amount, "reason": "arrived damaged"},
        started_by=user("requester"),
    ).mission


def pending_decision(mission: Mission, step: str = "supervisor_approval") -> Decision:
    return eventually(
        lambda: Decision.objects.filter(mission=mission, step_name=step, status="pending").first(),
        what=f"the {step} decision",
    )


def approve(mission: Mission, step: str = "supervisor_approval", by: str = "supervisor") -> None:
    decision_decide(decision=pending_decision(mission, step), user=user(by), outcome="approved")


def paid_elsewhere(order_id: str, amount: str, key: str) -> dict:
    """A refund paid through the payments system by someone other than the mission."""
    return call_tool(
        server="payments",
        tool="issue_refund",
        arguments={"order_id": order_id, "amount": amount},
        idempotency_key=key,
    )


def fact(context: dict, label: str) -> dict:
    return next(item for item in context["evidence"] if item["label"] == label)


def mission_refunds(order_id: str) -> list[dict]:
    """The refunds StudioX's missions paid (their keys are "<mission id>:issue_refund")."""
    figures = call_tool(
        server="payments",
        tool="lookup_refunds",
        arguments={"order_id": order_id},
        idempotency_key="test-read",
    )
    return [r for r in figures["refunds"] if r["idempotency_key"].endswith(":issue_refund")]


def rail(mission: Mission) -> list[str]:
    return list(
        Observation.objects.filter(mission=mission).order_by("id").values_list("message", flat=True)
    )


# --- in-process driving -------------------------------------------------------------------


def advance_through(mission: Mission, step: str) -> None:
    """Advance until `step` is recorded as completed (a worker's passes, one step each)."""
    while not Step.objects.filter(mission=mission, name=step, status="completed").exists():
        assert mission_advance(mission_id=mission.id, worker="test") == Outcome.CONTINUE


def cooled_off(mission: Mission) -> Mission:
    """Approved and waiting on its cooling-off timer, brought forward to now and woken."""
    mission.refresh_from_db()
    assert (mission.status, mission.current_step) == ("waiting", "cooling_off")
    make_due(mission)
    missions_tick()
    return mission


# --- the evidence approvers sign ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_second_request_shows_the_first_refund_read_from_payments(ledger, processes):
    env = {"DEMO_PAYMENTS_LEDGER": str(ledger), "STUDIOX_REFUND_COOLING_OFF_SECONDS": "0.2"}
    processes.worker(**env)
    processes.scheduler(**env)
    first = start("A-1001", "42.00")
    approve(first)
    eventually(lambda: Mission.objects.get(id=first.id).is_final, what="the first refund")
    first.refresh_from_db()
    assert first.verdict["outcome"] == "refunded", first.error
    refund = first.verdict["payment"]

    second = start("A-1001", "50.00")
    context = pending_decision(second).context

    payment = fact(context, "Payment")
    assert payment["value"] == (
        f"paid 120.00 EUR · refunded 42.00 EUR (42.00 refunded on {refund['created_at'][:10]} "
        f"by {refund['refund_id']}) · 78.00 EUR left to refund"
    )
    assert READ_AT.fullmatch(payment["source"])
    policy = fact(context, "Policy check")["value"]
    assert "Paid 120.00 EUR, 42.00 EUR refunded so far, from payments, read at" in policy
    # What the approver's page shows is that same truth, with its source.
    page = logged_in(user("supervisor")).get(f"/decisions/{pending_decision(second).id}/").text
    assert "refunded 42.00 EUR" in page and READ_AT.search(page)

    # Asking for more than is left is refused by policy, naming the payments figures.
    third = start("A-1001", "120.00")
    eventually(lambda: Mission.objects.get(id=third.id).is_final, what="the policy refusal")
    third.refresh_from_db()
    assert third.verdict["outcome"] == "rejected_by_policy", third.error
    assert third.verdict["reasons"][0].startswith(
        "asks 120.00 but only 78.00 of the 120.00 paid is refundable (42.00 refunded so far, "
        "from payments, read at "
    )
    assert not Decision.objects.filter(mission=third).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_refund_paid_during_the_cooling_off_ends_not_refunded_and_pays_nothing(ledger, processes):
    """A real worker cools off for an hour; it is stopped, a refund is paid elsewhere, the
    timer is brought forward, and a fresh worker reads the payments again before paying."""
    env = {"DEMO_PAYMENTS_LEDGER": str(ledger), "STUDIOX_REFUND_COOLING_OFF_SECONDS": "3600"}
    worker = processes.worker(**env)
    processes.scheduler(**env)
    mission = start("A-1001", "60.00")
    approve(mission)

    def cooling_off() -> bool:
        mission.refresh_from_db()
        return (mission.status, mission.current_step) == ("waiting", "cooling_off")

    eventually(cooling_off, what="the cooling-off timer")
    processes.kill(worker, signal.SIGTERM)  # a new worker replays from the database
    elsewhere = paid_elsewhere("A-1001", "70.00", "desk:refund-1")
    make_due(mission)
    processes.worker("after", **env)

    eventually(lambda: Mission.objects.get(id=mission.id).is_final, what="the verdict")
    mission.refresh_from_db()
    reason = (
        f"A-1001 has only 50.00 EUR left to refund (70.00 refunded on "
        f"{elsewhere['created_at'][:10]} by {elsewhere['refund_id']}) — the approval was for "
        "60.00 EUR"
    )
    assert mission.status == "succeeded", mission.error
    assert mission.verdict["outcome"] == "not_refunded"
    assert mission.verdict["reason"] == reason
    assert mission.verdict["approvals"][0]["by"] == "supervisor"
    assert f"Not refunded: {reason}" in rail(mission)
    assert mission_refunds("A-1001") == []
    assert not mission.steps.filter(name="issue_refund").exists()


@pytest.mark.django_db
def test_two_missions_racing_for_the_same_order_pay_once_and_the_other_names_the_refund(
    ledger,
):
    """Both missions read 120.00 refundable after their cooling-off, then both pay 70.00:
    the ledger pays the first; the second ends not refunded, naming the first's refund."""
    missions = [start("A-1001", "70.00"), start("A-1001", "70.00")]
    for mission in missions:
        drain(mission)
        approve(mission)
        drain(mission)
    for mission in missions:
        advance_through(cooled_off(mission), "read_payments_before_paying")
    winner, loser = (drain(mission) for mission in missions)

    assert winner.verdict["outcome"] == "refunded", winner.error
    refund = winner.verdict["payment"]
    assert loser.status == "succeeded", loser.error
    assert loser.verdict["outcome"] == "not_refunded"
    assert loser.verdict["reason"] == (
        f"another refund took it first: A-1001 has only 50.00 EUR left to refund "
        f"(70.00 refunded on {refund['created_at'][:10]} by {refund['refund_id']}) — the "
        "approval was for 70.00 EUR"
    )
    assert any(line.startswith("Not refunded: another refund") for line in rail(loser))
    assert [r["refund_id"] for r in mission_refunds("A-1001")] == [refund["refund_id"]]


@pytest.mark.django_db
def test_finance_signs_the_figures_read_when_it_is_asked(ledger):
    """Above the threshold, finance may decide days after the supervisor: the payments are
    read again for finance, and a refund paid in between ends the mission before asking."""
    mission = drain(start("A-1004", "740.00"))
    approve(mission)
    paid_elsewhere("A-1004", "100.00", "desk:refund-2")
    mission = drain(mission)

    assert mission.verdict["outcome"] == "not_refunded"
    assert mission.verdict["reason"].startswith("A-1004 has only 640.00 EUR left to refund")
    assert not Decision.objects.filter(mission=mission, step_name="finance_signoff").exists()


# --- what the approvers are told the AI said ----------------------------------------------


@pytest.mark.django_db
def test_the_offline_model_s_rationale_is_labelled_as_a_summary_of_the_evidence(ledger):
    mission = drain(start("A-1001", "42.00"))
    context = pending_decision(mission).context

    assert context["rationale"].startswith(
        "Offline model: summary composed from the evidence above. Order A-1001: 42.00 EUR "
        "asked because “arrived damaged”, 42.00 EUR to refund after fees."
    )
    assert "offline rationale" not in context["rationale"]
    assert fact(context, "Rationale written by") == {
        "label": "Rationale written by",
        "value": "studiox-offline-1 (offline: no language model is configured)",
        "source": "mission",
    }


# --- an unknown order ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_refuses_an_unknown_order_and_starts_nothing(ledger):
    client = logged_in(user("requester"))
    form = {"order_id": "A-9999", "amount": "10.00", "reason": "damaged"}

    response = client.post("/refunds/new/", form)

    assert response.status_code == 400
    assert '<span id="order_id_error" class="error">No order A-9999 on record</span>' in (
        response.text
    )
    assert 'value="A-9999"' in response.text  # what was typed is kept
    assert not Mission.objects.exists()
    assert client.post("/refunds/new/", {**form, "order_id": "A-1001"}).status_code == 302


@pytest.mark.django_db
def test_the_api_starts_an_unknown_order_and_the_mission_rejects_it(ledger):
    client = Client()
    client.force_login(user("requester"))
    response = client.post(
        "/api/missions/",
        {
            "type": "customer_refund",
            "input": {"order_id": "A-9999", "amount": "10.00", "reason": "damaged"},
        },
        content_type="application/json",
    )
    assert response.status_code == 201
    mission = drain(Mission.objects.get(id=response.json()["id"]))
    assert mission.verdict == {
        "outcome": "rejected",
        "summary": "Rejected: no order A-9999 on record",
        "reason": "no order A-9999 on record",
    }


# --- missions started on the first version --------------------------------------------------


@pytest.mark.django_db
def test_a_mission_started_on_version_1_keeps_its_steps(ledger):
    mission = start("A-1001", "42.00")
    Mission.objects.filter(id=mission.id).update(version=1)
    mission = drain(mission)

    assert mission.current_step == "supervisor_approval"
    names = list(mission.steps.order_by("position").values_list("name", flat=True))
    assert names[:2] == ["retrieve_order", "retrieve_payment"]
