"""ctx.llm: recorded in its step, replayed from the checkpoint, rate limits retried."""

import json

import pytest

from missions.services import mission_start, missions_tick
from tests.support.engine import drain, make_due
from tests.test_llm_openai import chat_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(settings, llm_server):
    settings.STUDIOX_LLM_PROVIDER = "openai"
    settings.STUDIOX_LLM_MODEL = "local-model"
    settings.STUDIOX_LLM_BASE_URL = f"{llm_server.url}/v1"
    settings.STUDIOX_LLM_API_KEY = "sk-test-secret-key-123456"
    settings.STUDIOX_LLM_TIMEOUT_SECONDS = 5.0
    return llm_server


def test_the_call_is_recorded_and_replayed_without_a_second_call(model):
    model.reply(chat_reply(json.dumps({"answer": "yes"}), prompt_tokens=12, completion_tokens=3))
    mission = drain(mission_start(type="test_llm", input={"question": "Refund?"}).mission)
    assert mission.verdict == {"outcome": "answered", "answer": "yes"}
    assert len(model.received) == 1  # later passes replayed the recorded answer
    record = mission.steps.get(name="ask")
    assert (record.kind, record.attempts) == ("llm", 1)
    assert record.result["messages"] == [{"role": "user", "content": "Refund?"}]
    assert record.result["input_tokens"] == 12 and record.result["output_tokens"] == 3
    assert record.result["latency_ms"] >= 0 and record.result["model"]
    assert "sk-test-secret" not in json.dumps(record.result)


def test_a_rate_limit_becomes_a_retry_with_back_off(model):
    model.reply({"error": "slow down"}, status=429, headers={"retry-after": "0"})
    model.reply(chat_reply(json.dumps({"answer": "later"})))
    mission = drain(mission_start(type="test_llm", input={"question": "Q"}).mission)
    assert (mission.status, mission.waiting_on) == ("waiting", "retry")
    make_due(mission)
    assert missions_tick()["woken"] == 1
    mission = drain(mission)
    assert mission.verdict["answer"] == "later"
    assert mission.steps.get(name="ask").attempts == 2


def test_a_refused_request_fails_the_mission_clearly(model):
    model.reply({"error": {"message": "invalid api key"}}, status=401)
    mission = drain(mission_start(type="test_llm", input={"question": "Q"}).mission)
    assert mission.status == "failed"
    assert "401" in mission.error and "sk-test-secret" not in mission.error
    assert len(model.received) == 1
