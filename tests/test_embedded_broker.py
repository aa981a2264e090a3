"""The embedded default's broker (studiox/broker.py): a message is taken whole or not at all."""

import logging
from pathlib import Path
from queue import Empty

import pytest
from django.conf import settings
from kombu import Connection

import studiox.broker
from missions.services import mission_start
from tests.support.processes import eventually

QUEUE = "jobs"


@pytest.fixture
def broker(tmp_path: Path):
    folders = {name: tmp_path / name for name in ("messages", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["messages"]),
        "data_folder_out": str(folders["messages"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    connection = Connection(
        "filesystem://", transport=studiox.broker.Transport, transport_options=options
    )
    channel = connection.channel()
    yield channel, folders
    connection.release()


def test_a_message_put_is_got_once(broker):
    channel, folders = broker
    channel._put(QUEUE, {"body": "refund"})
    assert channel._get(QUEUE) == {"body": "refund"}
    with pytest.raises(Empty):
        channel._get(QUEUE)
    assert not any(folders["messages"].iterdir()) and not any(folders["processed"].iterdir())


def test_a_message_being_written_cannot_be_taken(broker, monkeypatch):
    channel, _ = broker
    seen_while_writing, real_dumps = [], studiox.broker.dumps

    def dumps_and_look(payload):
        # The message file is open by now: this is where kombu's own transport gave it away.
        try:
            seen_while_writing.append(channel._get(QUEUE))
        except Empty:
            seen_while_writing.append("nothing")
        return real_dumps(payload)

    monkeypatch.setattr(studiox.broker, "dumps", dumps_and_look)
    channel._put(QUEUE, {"body": "refund"})
    assert seen_while_writing == ["nothing"]
    assert channel._get(QUEUE) == {"body": "refund"}


def test_an_unreadable_message_is_dropped_with_a_warning_and_the_next_one_is_got(broker, caplog):
    channel, folders = broker
    (folders["messages"] / f"0_left-by-a-killed-process.{QUEUE}.msg").write_bytes(b"")
    channel._put(QUEUE, {"body": "refund"})
    with caplog.at_level(logging.WARNING, logger="studiox.broker"):
        assert channel._get(QUEUE) == {"body": "refund"}
    assert "Dropped an unreadable broker message 0_left-by-a-killed-process" in caplog.text
    assert not any(folders["messages"].iterdir()) and not any(folders["processed"].iterdir())


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not settings.BROKER_URL.startswith("filesystem://"), reason="the embedded broker only"
)
def test_a_worker_meeting_an_empty_message_file_keeps_working(processes):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    (settings.BROKER_DIR / "out" / f"0_half-written.{queue}.msg").write_bytes(b"")
    worker = processes.worker()
    mission = mission_start(type="test_count", input={"steps": 3}).mission

    def finished():
        mission.refresh_from_db()
        return mission.is_final

    eventually(finished, what="the mission's verdict")
    assert mission.verdict == {"outcome": "counted", "total": 3}
    assert worker.poll() is None
