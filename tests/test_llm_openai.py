"""The openai provider against a real OpenAI-compatible HTTP server on 127.0.0.1."""

import json

import pytest

from integrations.llm import LLMError, LLMRetryableError, complete
from tests.support.network import closed_port_url

API_KEY = "sk-test-secret-123"
MESSAGES = [
    {"role": "system", "content": "You check refunds against the policy."},
    {"role": "user", "content": "May we refund 120.00 EUR for order A-1001?"},
]
SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "reject"]},
        "rationale": {"type": "string"},
    },
    "required": ["decision", "rationale"],
    "additionalProperties": False,
}
VERDICT = {"decision": "approve", "rationale": "Delivered 10 days ago, inside the window."}


@pytest.fixture
def endpoint(settings, llm_server):
    settings.STUDIOX_LLM_PROVIDER = "openai"
    settings.STUDIOX_LLM_MODEL = "local-model"
    settings.STUDIOX_LLM_BASE_URL = f"{llm_server.url}/v1"
    settings.STUDIOX_LLM_API_KEY = API_KEY
    settings.STUDIOX_LLM_TIMEOUT_SECONDS = 5.0
    return llm_server


def chat_reply(content: str, *, prompt_tokens: int = 31, completion_tokens: int = 9) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "local-model-2025-01",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def test_it_posts_the_conversation_to_chat_completions(endpoint):
    endpoint.reply(chat_reply("Yes: it was delivered inside the 30-day window."))
    result = complete(messages=MESSAGES)
    request = endpoint.received[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "local-model"
    assert request.body["messages"] == MESSAGES
    assert "response_format" not in request.body
    assert result.provider == "openai"
    assert result.model == "local-model-2025-01"
    assert result.content == "Yes: it was delivered inside the 30-day window."
    assert result.parsed is None
    assert (result.input_tokens, result.output_tokens) == (31, 9)
    assert result.latency_ms > 0


def test_it_asks_for_json_schema_output_and_returns_it_parsed(endpoint):
    endpoint.reply(chat_reply(json.dumps(VERDICT)))
    result = complete(messages=MESSAGES, schema={**SCHEMA, "title": "Refund verdict"})
    response_format = endpoint.received[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Refund_verdict"
    assert response_format["json_schema"]["schema"]["required"] == ["decision", "rationale"]
    assert result.parsed == VERDICT


def test_it_accepts_json_in_a_code_fence(endpoint):
    endpoint.reply(chat_reply(f"```json\n{json.dumps(VERDICT)}\n```"))
    assert complete(messages=MESSAGES, schema=SCHEMA).parsed == VERDICT


def test_a_rate_limit_is_retryable_after_the_time_the_server_asks(endpoint):
    endpoint.reply(
        {"error": {"message": "Rate limit reached for requests", "type": "requests"}},
        status=429,
        headers={"retry-after": "7"},
    )
    with pytest.raises(LLMRetryableError, match="429") as caught:
        complete(messages=MESSAGES)
    assert caught.value.retry_after == 7.0
    assert "Rate limit reached" in str(caught.value)


def test_a_server_error_is_retryable(endpoint):
    endpoint.reply({"error": {"message": "upstream overloaded"}}, status=503)
    with pytest.raises(LLMRetryableError, match="503") as caught:
        complete(messages=MESSAGES)
    assert caught.value.retry_after is None


def test_a_refused_request_is_an_llm_error_that_does_not_show_the_key(endpoint):
    endpoint.reply({"error": {"message": f"Incorrect API key provided: {API_KEY}"}}, status=401)
    with pytest.raises(LLMError, match="401") as caught:
        complete(messages=MESSAGES)
    assert "Incorrect API key" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_a_reply_that_is_not_json_is_an_llm_error(endpoint):
    endpoint.reply("<html>502 Bad Gateway</html>")
    with pytest.raises(LLMError, match="not JSON"):
        complete(messages=MESSAGES)


def test_a_reply_without_choices_is_an_llm_error(endpoint):
    endpoint.reply({"object": "chat.completion", "usage": {}})
    with pytest.raises(LLMError, match=r"choices\[0\]"):
        complete(messages=MESSAGES)


def test_a_reply_that_breaks_the_schema_gets_a_second_chance(endpoint):
    endpoint.reply(chat_reply("Sure, approve it."))
    endpoint.reply(chat_reply(json.dumps(VERDICT)))
    result = complete(messages=MESSAGES, schema=SCHEMA)
    assert result.parsed == VERDICT
    retry = endpoint.received[1].body["messages"]
    assert retry[:2] == MESSAGES
    assert retry[2] == {"role": "assistant", "content": "Sure, approve it."}
    assert "is not JSON" in retry[3]["content"]
    assert (result.input_tokens, result.output_tokens) == (62, 18)


def test_a_reply_that_keeps_breaking_the_schema_is_an_llm_error(endpoint):
    for _ in range(2):
        endpoint.reply(chat_reply(json.dumps({"decision": "maybe", "rationale": "unsure"})))
    with pytest.raises(LLMError, match="does not match the schema") as caught:
        complete(messages=MESSAGES, schema=SCHEMA)
    assert "'maybe'" in str(caught.value)
    assert "decision" in str(caught.value)
    assert len(endpoint.received) == 2


def test_a_slow_endpoint_times_out_as_retryable(endpoint, settings):
    settings.STUDIOX_LLM_TIMEOUT_SECONDS = 0.2
    endpoint.reply(chat_reply("too late"), delay=5)
    with pytest.raises(LLMRetryableError, match=r"did not answer within 0\.2s"):
        complete(messages=MESSAGES)


def test_an_unreachable_endpoint_is_retryable(endpoint, settings):
    settings.STUDIOX_LLM_BASE_URL = f"{closed_port_url()}/v1"
    with pytest.raises(LLMRetryableError, match="unreachable"):
        complete(messages=MESSAGES)


def test_the_recorded_result_never_contains_the_api_key(endpoint):
    endpoint.reply(chat_reply(json.dumps(VERDICT)))
    recorded = json.dumps(complete(messages=MESSAGES, schema=SCHEMA).to_json())
    assert API_KEY not in recorded
    assert json.loads(recorded)["parsed"] == VERDICT
