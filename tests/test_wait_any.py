"""ctx.wait_any (docs/authoring.md): the first of a decision, an event, a timer and a child
mission wins; the losers are withdrawn in the same transaction. Driven in-process."""

from datetime import timedelta

import pytest
from django.utils import timezone
from pydantic import BaseModel

from decisions.models import Decision
from decisions.services import DecisionAlreadyDecided, decision_decide
from missions import engine
from missions.models import Event, EventDelivery, Mission
from missions.runtime import Decision as DecisionWait
from missions.runtime import Event as EventWait
from missions.runtime import mission
from missions.services import event_deliver, missions_tick
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


def waiting(requester, **input) -> Mission:
    parent = drain(started(requester, "test_any", **input))
    assert (parent.status, parent.waiting_on) == ("waiting", "any"), parent.error
    return parent


def branch_decision(parent: Mission) -> Decision:
    return Decision.objects.get(mission=parent, step_name="first:0")


def assert_withdrawn(decision: Decision, reason: str) -> None:
    decision.refresh_from_db()
    assert (decision.status, decision.outcome) == ("withdrawn", "withdrawn")
    assert decision.comment == reason
    assert not Decision.objects.filter(id=decision.id, status="pending").exists()


def make_timer_due(parent: Mission, index: int) -> None:
    step = parent.steps.get(name="first")
    step.wait["branches"][index]["until"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    step.save(update_fields=["wait"])
    Mission.objects.filter(id=parent.id).update(wake_at=timezone.now())
    engine._step_cache.clear()


def test_a_decision_wins_and_a_later_event_is_kept_for_the_next_waiter(requester, supervisor):
    parent = waiting(requester, event_key="k-1", timer_seconds=3600)
    decision = branch_decision(parent)
    assert (decision.title, decision.context) == ("Go ahead?", {"why": "test"})
    assert parent.waiting_event == "go" and parent.waiting_event_key == "k-1"
    decision_decide(decision=decision, user=supervisor, outcome="approved")
    parent = drain(parent)
    assert parent.verdict == {
        "outcome": "decision",
        "value": {"outcome": "approved", "by": "supervisor"},
    }
    assert parent.steps.get(name="first").result["index"] == 0

    sent = event_deliver(event="go", key="k-1", payload={"n": 1})
    assert sent.delivered_to == []  # the wait that lost takes nothing
    assert Event.objects.get(id=sent.event.id).delivered_at is None
    next_waiter = drain(started(requester, "test_any", decision=False, event_key="k-1"))
    assert next_waiter.verdict == {"outcome": "event", "value": {"n": 1}}


def test_an_event_wins_and_the_decision_leaves_the_queue_withdrawn(requester, supervisor):
    parent = waiting(requester, event_key="k-2", timer_seconds=3600)
    decision = branch_decision(parent)
    sent = event_deliver(event="go", key="k-2", payload={"carrier": "DHL"})
    assert sent.delivered_to == [str(parent.id)]
    parent = drain(parent)
    assert parent.verdict == {"outcome": "event", "value": {"carrier": "DHL"}}
    assert_withdrawn(decision, "superseded by event 'go' for k-2")
    with pytest.raises(DecisionAlreadyDecided, match="superseded by event 'go'"):
        decision_decide(decision=decision, user=supervisor, outcome="approved")
    parent.refresh_from_db()
    assert (parent.waiting_event, parent.waiting_event_key) == ("", "")


def test_a_timer_wins(requester):
    parent = waiting(requester, event_key="k-3", timer_seconds=3600)
    make_timer_due(parent, 2)
    assert missions_tick()["woken"] == 1
    parent = drain(parent)
    assert parent.verdict == {"outcome": "timer", "value": None}
    decision = branch_decision(parent)
    assert decision.status == "withdrawn"
    assert decision.comment.startswith("superseded by timer due ")


def test_a_child_mission_wins(requester):
    parent = waiting(requester, child_key="k-4", timer_seconds=3600)
    child = Mission.objects.get(parent=parent)
    drain(child)
    event_deliver(event="shipped", key="k-4", payload={"ok": True})
    child = drain(child)
    assert child.status == "succeeded"
    parent.refresh_from_db()
    assert parent.status == "running"  # the child's end woke it
    parent = drain(parent)
    assert parent.verdict["outcome"] == "mission"
    assert parent.verdict["value"] == {
        "id": str(child.id),
        "type": "test_event",
        "status": "succeeded",
        "verdict": {"outcome": "received", "payload": {"ok": True}},
        "outcome": "received",
        "summary": "",
        "error": "",
    }
    assert_withdrawn(branch_decision(parent), f"superseded by mission #{str(child.id)[:8]}")


def test_the_time_out_withdraws_every_branch(requester):
    parent = waiting(requester, event_key="k-5", timeout_seconds=60)
    step = parent.steps.get(name="first")
    step.wait["until"] = timezone.now().isoformat()
    step.save(update_fields=["wait"])
    Mission.objects.filter(id=parent.id).update(wake_at=timezone.now())
    engine._step_cache.clear()
    missions_tick()
    parent = drain(parent)
    assert parent.verdict == {"outcome": "timeout"}
    assert_withdrawn(branch_decision(parent), "the wait timed out")
    assert event_deliver(event="go", key="k-5").delivered_to == []


def test_an_event_delivered_after_its_wait_lost_is_handed_back(requester):
    """The timer was due before the event arrived, but the mission had not run yet: the timer
    won, and the event it received meanwhile goes to the next waiter."""
    parent = waiting(requester, event_key="k-6", timer_seconds=3600)
    make_timer_due(parent, 2)
    sent = event_deliver(event="go", key="k-6", payload={"late": True})
    assert sent.delivered_to == [str(parent.id)]
    parent = drain(parent)
    assert parent.verdict == {"outcome": "timer", "value": None}
    assert not EventDelivery.objects.filter(event=sent.event).exists()
    assert Event.objects.get(id=sent.event.id).delivered_at is None
    next_waiter = drain(started(requester, "test_any", decision=False, event_key="k-6"))
    assert next_waiter.verdict == {"outcome": "event", "value": {"late": True}}


def test_an_event_already_sent_wins_at_once_and_opens_no_decision(requester):
    event_deliver(event="go", key="k-7", payload="early")
    parent = drain(started(requester, "test_any", event_key="k-7", timer_seconds=3600))
    assert parent.verdict == {"outcome": "event", "value": "early"}
    assert not Decision.objects.filter(mission=parent).exists()


def test_the_scheduler_wakes_a_wait_whose_decision_wake_up_was_lost(requester, supervisor):
    parent = waiting(requester, event_key="k-8")
    decision_decide(decision=branch_decision(parent), user=supervisor, outcome="rejected")
    Mission.objects.filter(id=parent.id).update(status="waiting")  # as if the wake was lost
    assert missions_tick()["missions"] == 1
    assert drain(parent).verdict["value"]["outcome"] == "rejected"


class Nothing(BaseModel):
    """An input model, as every mission type publishes one (tests/test_api_schema.py)."""

    x: int = 0


@mission("test_any_two_events", version=1, input=Nothing)
def two_events(ctx, data: Nothing):
    return ctx.wait_any("both", EventWait("a"), EventWait("b"))


@mission("test_any_with_nothing", version=1, input=Nothing)
def with_nothing(ctx, data: Nothing):
    return ctx.wait_any("nothing", DecisionWait(role="r", title="t"), "soon")


def test_what_cannot_work_is_refused_at_the_call(requester):
    two = drain(started(requester, "test_any_two_events", x=1))
    assert two.status == "failed"
    assert "can wait for one Event at a time" in two.error
    assert not two.steps.exists()
    odd = drain(started(requester, "test_any_with_nothing", x=1))
    assert "takes Decision, Event, Timer or MissionDone, not 'soon'" in odd.error
