"""Operator commands: start a mission, show its steps, list stuck ones, check a deploy."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from missions.models import Event, Mission
from missions.runtime import _registry
from missions.services import MissionInputError, event_deliver, mission_start
from tests.support.engine import drain

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_start_mission_validates_and_starts(requester):
    output = run("start_mission", "test_count", '{"steps": 2}', "--user", "requester", "--key", "k")
    mission = Mission.objects.get()
    assert f"Started test_count mission {mission.id}" in output
    assert mission.started_by == requester
    assert "Already started" in run(
        "start_mission", "test_count", '{"steps": 2}', "--user", "requester", "--key", "k"
    )
    with pytest.raises(CommandError, match="steps: Input should be greater than or equal to 0"):
        run("start_mission", "test_count", '{"steps": -1}')
    with pytest.raises(CommandError, match="not valid JSON"):
        run("start_mission", "test_count", "{steps")


def test_start_mission_refuses_a_nul_in_the_input_naming_the_field(requester):
    with pytest.raises(CommandError, match=r"input\.key: NUL characters"):
        run("start_mission", "test_event", '{"key": "A-1\\u0000"}')
    assert not Mission.objects.exists()


def test_an_event_with_a_nul_is_refused_by_the_service_on_every_path(requester):
    with pytest.raises(MissionInputError) as refused:
        event_deliver(event="shipped", key="A-1", payload={"note\x00": 1})
    assert list(refused.value.errors) == ["payload.note\\u0000"]
    assert not Event.objects.exists()


def test_mission_steps_shows_every_checkpoint():
    mission = drain(mission_start(type="test_count", input={"steps": 2}).mission)
    output = run("mission_steps", str(mission.id), "--results")
    assert "n:0" in output and "n:1" in output and "completed" in output
    assert "verdict: {" in output and '"total": 2' in output
    with pytest.raises(CommandError, match="no mission"):
        run("mission_steps", "not-a-uuid")


def test_missions_stuck_explains_why():
    waiting = drain(mission_start(type="test_sleep", input={"seconds": 60}).mission)
    Mission.objects.filter(id=waiting.id).update(wake_at=timezone.now() - timedelta(hours=1))
    failed = drain(
        mission_start(type="test_refuse", input={"order_id": "A", "amount": "5000"}).mission
    )
    output = run("missions_stuck")
    assert f"{waiting.id}" in output and "is the scheduler (celery beat) running?" in output
    assert f"{failed.id}" in output and "refund of 5000 exceeds the limit" in output
    assert "2 stuck mission(s)" in output


def test_the_deploy_check_lists_missions_that_would_diverge():
    compatible = drain(mission_start(type="test_sleep", input={"seconds": 600}).mission)
    assert "1 in-flight mission(s) checked, 0 would diverge" in run("missions_check_deploy")
    original = _registry["test_sleep"][1]

    def reordered(ctx, data):
        ctx.sleep("nap", timedelta(seconds=1))
        ctx.step("before", lambda: "before")

    _registry["test_sleep"][1] = original.__class__(
        name="test_sleep",
        version=1,
        title="Sleeper",
        fn=reordered,
        input_model=original.input_model,
    )
    try:
        with pytest.raises(CommandError, match="would diverge"):
            out = StringIO()
            call_command("missions_check_deploy", stdout=out)
        assert f"{compatible.id}" in out.getvalue()
        assert "mission code changed incompatibly" in out.getvalue()
        compatible.refresh_from_db()
        assert compatible.status == "waiting"  # nothing was executed or written
        assert compatible.steps.count() == 2
    finally:
        _registry["test_sleep"][1] = original
