"""Durability with real worker processes: kill -9, restarts, timers, events (docs/concepts.md)."""

import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from missions.models import Mission
from missions.services import event_deliver, mission_start
from tests.support.processes import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def status_of(mission: Mission) -> Mission:
    mission.refresh_from_db()
    return mission


def finished(mission: Mission):
    return lambda: status_of(mission).is_final and mission


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_worker_killed_mid_step_is_recovered_and_effects_happen_once(processes, tmp_path):
    marker, block = tmp_path / "effects.log", tmp_path / "block"
    block.touch()
    victim = processes.worker("victim")
    processes.scheduler()
    mission = mission_start(
        type="test_effects", input={"marker": str(marker), "block_file": str(block)}
    ).mission
    eventually(lambda: any(line.startswith("started") for line in lines(marker)), what="slow step")

    processes.kill(victim, signal.SIGKILL)
    block.unlink()
    processes.worker("survivor")
    eventually(finished(mission), what="the verdict after recovery", attempts=900)

    assert mission.status == "succeeded", processes.logs()
    effects = lines(marker)
    assert effects.count("first k1") == 1  # the completed step was replayed, not re-run
    slow_starts = [line.split()[1] for line in effects if line.startswith("started")]
    assert len(slow_starts) == 2 and len(set(slow_starts)) == 1  # same idempotency key twice
    assert slow_starts[0] == f"{mission.id}:slow"
    assert Group.objects.filter(name=f"group-{mission.id}").count() == 1
    slow = mission.steps.get(name="slow")
    assert slow.attempts == 2
    assert mission.observations.filter(kind="note", message="All effects done").count() == 1


def test_a_timer_survives_a_worker_restart(processes):
    worker = processes.worker("first")
    processes.scheduler()
    mission = mission_start(type="test_sleep", input={"seconds": 2}).mission
    eventually(lambda: status_of(mission).status == "waiting", what="the sleep")
    processes.kill(worker, signal.SIGTERM)
    processes.worker("second")
    eventually(finished(mission), what="the wake-up")
    assert mission.verdict == {"outcome": "rested", "after": "after"}
    assert list(mission.steps.values_list("name", flat=True)) == ["before", "nap", "after"]


def test_an_event_sent_before_the_wait_is_received(processes):
    event_deliver(event="shipped", key="early-1", payload={"carrier": "DHL"})
    processes.worker()
    mission = mission_start(type="test_event", input={"key": "early-1"}).mission
    eventually(finished(mission), what="the event to be taken")
    assert mission.verdict == {"outcome": "received", "payload": {"carrier": "DHL"}}


def test_an_event_sent_during_the_wait_resumes_the_mission(processes):
    processes.worker()
    mission = mission_start(type="test_event", input={"key": "late-1"}).mission
    eventually(lambda: status_of(mission).waiting_on == "event", what="the wait")
    result = event_deliver(event="shipped", key="late-1", payload={"carrier": "UPS"})
    assert result.delivered_to == [str(mission.id)]
    eventually(finished(mission), what="the resume")
    assert mission.verdict["payload"] == {"carrier": "UPS"}


def test_a_wait_times_out_through_the_scheduler(processes):
    processes.worker()
    processes.scheduler()
    mission = mission_start(type="test_event", input={"key": "never", "timeout_seconds": 1}).mission
    eventually(finished(mission), what="the time-out")
    assert mission.verdict == {"outcome": "timed_out", "payload": None}


def test_two_workers_share_many_missions_and_run_each_step_once(processes, tmp_path):
    processes.worker("a")
    processes.worker("b")
    missions = [mission_start(type="test_count", input={"steps": 5}).mission for _ in range(6)]
    for mission in missions:
        eventually(finished(mission), what=f"mission {mission.id}")
        assert mission.verdict == {"outcome": "counted", "total": 5}
        assert all(step.attempts == 1 for step in mission.steps.all())


def broker_messages_mentioning(text: str) -> list[bytes]:
    """Every message the broker holds (queued or delivered but unacknowledged) naming `text`."""
    from django.conf import settings

    if settings.BROKER_URL.startswith("redis://"):
        import redis

        broker = redis.Redis.from_url(settings.BROKER_URL)
        held = [*broker.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1), *broker.hvals("unacked")]
    else:  # the embedded filesystem broker: one file per message, its body base64-encoded
        import base64
        import json

        held = []
        for path in (settings.BROKER_DIR / "out").glob("*.msg"):
            message = json.loads(path.read_text())
            held.append(base64.b64decode(message["body"]))
    return [message for message in held if text.encode() in message]


def test_a_three_day_sleep_leaves_no_message_in_the_broker(processes):
    processes.worker()
    mission = mission_start(type="test_sleep", input={"seconds": 3 * 24 * 3600}).mission
    eventually(lambda: status_of(mission).waiting_on == "timer", what="the three-day sleep")
    eventually(
        lambda: not broker_messages_mentioning(str(mission.id)), what="no message for the mission"
    )
    assert mission.wake_at > mission.waiting_since + timedelta(days=2, hours=23)


def test_the_same_advance_delivered_many_times_to_two_workers_runs_each_step_once(
    processes, tmp_path
):
    from missions.engine import enqueue_advance

    marker = tmp_path / "effects.log"
    processes.worker("a")
    processes.worker("b")
    mission = mission_start(type="test_effects", input={"marker": str(marker)}).mission
    for _ in range(10):  # a flood of duplicate deliveries racing the real chain
        enqueue_advance(mission.id)
    eventually(finished(mission), what="the verdict")
    assert mission.status == "succeeded"
    assert lines(marker).count("first k1") == 1
    assert len([line for line in lines(marker) if line.startswith("started")]) == 1
    assert all(step.attempts == 1 for step in mission.steps.all())
    assert Group.objects.filter(name=f"group-{mission.id}").count() == 1
