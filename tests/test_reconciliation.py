"""The quarterly reconciliation end to end: the engine driven in-process (parent and its twelve
children, as workers would), the seeded general ledger in Enterprise Knowledge, and the real
demo ledgers MCP server, a process of its own with its own SQLite file, over streamable HTTP
(tests/test_demo_ledgers.py covers its stdio side, the built-in default)."""

import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from decisions.models import Decision
from decisions.services import decision_decide
from integrations import mcp_client
from knowledge.models import Record
from missions import engine
from missions.models import Mission, Step
from missions.services import MissionInputError, mission_start, missions_tick
from observations.models import Observation
from showcases.reconciliation.seed import seed_demo
from tests.conftest import make_user
from tests.support.engine import drain, make_due
from tests.support.network import free_port
from tests.support.processes import ROOT, eventually, stop, wait_until_listening

pytestmark = pytest.mark.django_db

QUARTER = "2026-Q3"
BANK = ("bank", "1010 Operating account", 125000)  # the system is 1,250.00 short
EXPENSES = ("expenses", "6400 Travel", -4250)  # 42.50 over the general ledger


@pytest.fixture
def ledgers(tmp_path, settings, monkeypatch, requester, finance, controller):
    """The seeded general ledger; the demo ledgers server (`python -m demo_ledgers
    --http`, its bundled data, a fresh SQLite file) as "ledgers", stopped by pid at the end;
    and a record of every tool call the missions make (tool and idempotency key)."""
    seed_demo()
    path = tmp_path / "ledgers.sqlite3"
    port = free_port()
    log = tmp_path / "ledgers.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "demo_ledgers", "--http", "--port", str(port)],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], "DEMO_LEDGERS_DB": str(path)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    calls: list[tuple[str, str]] = []
    real_call_tool = mcp_client.call_tool

    def recording_call_tool(**kwargs):
        calls.append((kwargs["tool"], kwargs["idempotency_key"]))
        return real_call_tool(**kwargs)

    try:
        wait_until_listening(server, port, log)
        settings.STUDIOX_MCP_SERVERS = {
            "ledgers": {"transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}
        }
        monkeypatch.setattr(mcp_client, "call_tool", recording_call_tool)
        yield {"path": path, "calls": calls}
    finally:
        stop(server)


@pytest.fixture
def controller(db) -> User:
    return make_user("controller", "controller")


def start(quarter: str = QUARTER, threshold: str = "100.00") -> Mission:
    return mission_start(
        type="quarterly_reconciliation",
        input={"quarter": quarter, "threshold": threshold},
        started_by=User.objects.get(username="requester"),
    ).mission


def run(mission: Mission) -> Mission:
    """Advance the parent and its children until none moves on its own any more. A child's
    back-off (a ledger read that timed out on a busy machine) is brought forward, as time
    would; the parent's are left for the tests to see."""
    before = None
    for _ in range(100):
        children = list(Mission.objects.filter(parent=mission).order_by("created_at"))
        for child in children:
            if child.waiting_on == Mission.WaitingOn.RETRY:
                make_due(child)
        family = [mission, *children]
        for member in family:
            if not member.is_final:
                drain(member)
        now = [(m.id, m.status, m.waiting_on) for m in family]
        if now == before:
            break
        before = now
    mission.refresh_from_db()
    return mission


def posted(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT system, account, amount_cents, idempotency_key FROM entries ORDER BY id"
        ).fetchall()


def decide(mission: Mission, step: str, username: str, outcome: str = "approved") -> None:
    decision = Decision.objects.filter(mission=mission, step_name=step, status="pending").first()
    assert decision, f"no pending {step}: {family_state(mission)}"
    decision_decide(
        decision=decision,
        user=User.objects.get(username=username),
        outcome=outcome,
        comment="checked the bank statement",
    )


def family_state(mission: Mission) -> list[tuple]:
    """Where the parent and each child stand, and why (for a failure's message)."""
    family = Mission.objects.filter(id=mission.id) | Mission.objects.filter(parent=mission)
    return list(family.values_list("type", "status", "waiting_on", "error"))


def rail(mission: Mission) -> list[str]:
    return list(
        Observation.objects.filter(mission=mission).order_by("id").values_list("message", flat=True)
    )


def test_the_seeded_quarter_has_two_discrepancies_and_finance_signs_off(ledgers):
    mission = run(start())

    assert (mission.status, mission.waiting_on) == ("waiting", "any"), mission.error
    children = Mission.objects.filter(parent=mission)
    assert children.count() == 12
    assert set(children.values_list("status", flat=True)) == {"succeeded"}
    apart = {c.verdict["system"]: c.verdict for c in children if c.verdict["status"] != "matched"}
    assert {s: v["difference"] for s, v in apart.items()} == {
        "bank": "1250.00",
        "expenses": "42.50",
    }
    bank = children.get(input__system="bank")
    assert any(
        line.startswith("Compared Bank with the general ledger: 1,250.00 EUR apart")
        for line in rail(bank)
    )
    sign_off = Decision.objects.get(mission=mission, step_name="sign_off:0", status="pending")
    assert sign_off.role.name == "finance"
    facts = {fact["label"]: fact["value"] for fact in sign_off.context["evidence"]}
    assert facts["Quarter"] == QUARTER
    assert facts["Bank (above the threshold)"].startswith("1,250.00 EUR apart.")
    assert facts["Expenses (below the threshold)"].startswith("42.50 EUR apart.")
    assert facts["Adjusting entries to post"] == (
        "Bank 1010 Operating account +1,250.00 EUR; Expenses 6400 Travel -42.50 EUR"
    )
    assert posted(ledgers["path"]) == []  # nothing before the sign-off

    decide(mission, "sign_off:0", "finance")
    mission = run(mission)

    assert mission.status == "succeeded", mission.error
    verdict = mission.verdict
    assert verdict["outcome"] == "adjusted"
    assert (mission.outcome, mission.summary) == (
        "adjusted",
        f"{QUARTER} reconciled: 2 of 12 systems adjusted to the general ledger (Bank, Expenses); "
        "signed off by finance (finance)",
    )
    assert bank.summary.startswith("Compared Bank with the general ledger: 1,250.00 EUR apart")
    assert verdict["sign_off"] == {
        "role": "finance",
        "outcome": "approved",
        "by": "finance",
        "comment": "checked the bank statement",
    }
    assert [s["system"] for s in verdict["systems"]] == [
        "erp",
        "bank",
        "payroll",
        "card_processor",
        "expenses",
        "inventory",
        "billing",
        "treasury",
        "tax",
        "fixed_assets",
        "procurement",
        "crm",
    ]
    by_system = {s["system"]: s for s in verdict["systems"]}
    assert by_system["bank"]["entries"] == ["AJE-000001"]
    assert by_system["erp"] == {
        "system": "erp",
        "name": "ERP",
        "status": "matched",
        "difference": "0.00",
        "entries": [],
    }
    assert posted(ledgers["path"]) == [
        (*BANK, f"{mission.id}:post:bank:1010 Operating account"),
        (*EXPENSES, f"{mission.id}:post:expenses:6400 Travel"),
    ]
    tools = [tool for tool, _ in ledgers["calls"]]
    assert (tools.count("read_balances"), tools.count("post_adjusting_entry")) == (12, 2)
    assert "Posted AJE-000001 on Bank 1010 Operating account: +1,250.00 EUR" in rail(mission)


def test_a_replayed_posting_step_posts_its_entry_once(ledgers, monkeypatch):
    """The ledger posts, then the answer is lost (as when a worker dies before the
    checkpoint): the step runs again with the same idempotency key and posts nothing new."""
    recording_call_tool = mcp_client.call_tool
    lost: list[str] = []

    def answer_lost_once(**kwargs):
        result = recording_call_tool(**kwargs)
        if kwargs["tool"] == "post_adjusting_entry" and not lost:
            lost.append(kwargs["idempotency_key"])
            raise mcp_client.ToolTransportError("the connection broke before the answer")
        return result

    monkeypatch.setattr(mcp_client, "call_tool", answer_lost_once)
    mission = run(start())
    decide(mission, "sign_off:0", "finance")
    mission = run(mission)
    assert (mission.status, mission.waiting_on) == ("waiting", "retry"), mission.error

    make_due(mission)
    missions_tick()
    mission = run(mission)

    assert mission.status == "succeeded", mission.error
    step = Step.objects.get(mission=mission, name="post:bank:1010 Operating account")
    assert step.attempts == 2
    assert lost == [f"{mission.id}:post:bank:1010 Operating account"]
    assert [key for tool, key in ledgers["calls"] if tool == "post_adjusting_entry"] == [
        lost[0],
        lost[0],  # the replay, same key
        f"{mission.id}:post:expenses:6400 Travel",
    ]
    assert [row[:3] for row in posted(ledgers["path"])] == [BANK, EXPENSES]
    bank_entry = mission.verdict["entries"][0]
    assert (bank_entry["entry_id"], bank_entry["duplicate"]) == ("AJE-000001", True)


def pass_the_sign_off_window(mission: Mission) -> None:
    """Bring the sign-off timer's due time to now, as if two days had passed."""
    step = Step.objects.get(mission=mission, name="sign_off")
    now = timezone.now().isoformat()
    branches = [{**b, "until": now} if b["kind"] == "timer" else b for b in step.wait["branches"]]
    step.wait = {**step.wait, "branches": branches}
    step.save(update_fields=["wait"])
    Mission.objects.filter(id=mission.id).update(wake_at=timezone.now())
    engine._step_cache.clear()  # the rows changed behind the worker's back


def test_without_finance_for_two_days_the_controller_signs_off(ledgers):
    mission = run(start())
    pass_the_sign_off_window(mission)
    missions_tick()
    mission = run(mission)

    assert (mission.status, mission.waiting_on) == ("waiting", "decision"), mission.error
    finance = Decision.objects.get(mission=mission, step_name="sign_off:0")
    assert finance.status == "withdrawn"
    controller = Decision.objects.get(mission=mission, step_name="controller_sign_off")
    assert (controller.role.name, controller.status) == ("controller", "pending")
    assert controller.context["evidence"][0]["label"] == "Escalated"
    assert "escalated to the controller" in " ".join(rail(mission))
    assert posted(ledgers["path"]) == []

    decide(mission, "controller_sign_off", "controller")
    mission = run(mission)

    assert mission.verdict["outcome"] == "adjusted", mission.error
    assert mission.verdict["sign_off"]["role"] == "controller"
    assert [row[:3] for row in posted(ledgers["path"])] == [BANK, EXPENSES]


def test_a_rejected_sign_off_posts_nothing(ledgers):
    mission = run(start())
    decide(mission, "sign_off:0", "finance", outcome="rejected")
    mission = run(mission)

    assert mission.verdict["outcome"] == "rejected", mission.error
    assert mission.verdict["discrepancies"] == 2
    assert posted(ledgers["path"]) == []


def test_below_the_threshold_the_entries_are_posted_without_sign_off(ledgers):
    mission = run(start(threshold="5000.00"))

    assert mission.verdict["outcome"] == "adjusted", mission.error
    assert mission.verdict["sign_off"] is None
    assert not Decision.objects.filter(mission=mission).exists()
    assert [row[:3] for row in posted(ledgers["path"])] == [BANK, EXPENSES]


def test_a_system_the_ledgers_do_not_know_fails_with_their_answer(ledgers):
    child = mission_start(
        type="ledger_reconciliation",
        input={"system": "mainframe", "quarter": QUARTER},
        started_by=User.objects.get(username="requester"),
    ).mission
    child = run(child)

    assert child.status == "failed"
    assert "unknown system 'mainframe'; the systems: bank, billing," in child.error


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"quarter": "Q3-2026"}, "quarter"),
        ({"quarter": QUARTER, "threshold": "-1.00"}, "threshold"),
        ({"quarter": QUARTER, "threshold": "12.345"}, "threshold"),
        ({"quarter": QUARTER, "threshold": "lots"}, "threshold"),
        ({}, "quarter"),
    ],
)
def test_bad_input_is_refused_by_field(db, requester, input, field):
    with pytest.raises(MissionInputError) as refused:
        mission_start(type="quarterly_reconciliation", input=input, started_by=requester)

    assert field in refused.value.errors


def test_the_threshold_is_kept_as_a_decimal_string(db, requester):
    mission = mission_start(
        type="quarterly_reconciliation",
        input={"quarter": QUARTER, "threshold": "250.5"},
        started_by=requester,
    ).mission

    assert mission.input == {"quarter": QUARTER, "threshold": "250.5"}
    assert Decimal(mission.input["threshold"]) == Decimal("250.50")


def test_the_demo_seed_makes_the_controller_and_the_general_ledger(db):
    call_command("seed", password="pw-demo-123", verbosity=0)

    assert User.objects.get(username="controller").groups.filter(name="controller").exists()
    assert User.objects.get(username="admin").groups.filter(name="controller").exists()
    records = Record.objects.filter(type="general_ledger", key__endswith=":" + QUARTER)
    assert records.count() == 12
    assert records.get(key="bank:2026-Q3").data["accounts"]["1010 Operating account"] == (
        "483560.55"
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_after_posting_and_before_its_checkpoint_posts_once(
    tmp_path, processes, requester, finance
):
    """Real workers and scheduler, the built-in ledgers server spawned over stdio: the worker
    is killed (SIGKILL) right after the ledger posted the first entry; another worker takes
    the mission over, runs the step again with the same key, and nothing is posted twice."""
    seed_demo()
    path, crash = tmp_path / "ledgers.sqlite3", tmp_path / "crash-after-tool"
    env = {
        "DEMO_LEDGERS_DB": str(path),
        "STUDIOX_LEASE_SECONDS": "3",
        "STUDIOX_MISSION_MODULES": "tests.missions_for_tests,tests.reconciliation_faults",
        "STUDIOX_TEST_CRASH_AFTER_POSTING": str(crash),
    }
    processes.scheduler(**env)
    first = processes.worker("first", **env)
    mission = start()
    sign_off = eventually(
        lambda: Decision.objects.filter(mission=mission, step_name="sign_off:0").first(),
        what="finance's sign-off",
        attempts=3000,
    )

    crash.touch()  # the first posting kills its worker
    decide(mission, sign_off.step_name, "finance")
    eventually(lambda: first.poll() == -signal.SIGKILL, what="the posting, then the kill")
    assert [row[:3] for row in posted(path)] == [BANK]  # posted, not checkpointed
    processes.worker("second", **env)

    def finished() -> bool:
        mission.refresh_from_db()
        return mission.is_final

    eventually(finished, what="the verdict", attempts=3000)
    assert mission.verdict["outcome"] == "adjusted", mission.error
    assert [row[:3] for row in posted(path)] == [BANK, EXPENSES]
    assert mission.verdict["entries"][0]["duplicate"] is True
