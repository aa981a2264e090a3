"""The anthropic provider against a real HTTP server on 127.0.0.1 speaking the Messages API."""

import json

import pytest

from integrations.llm import LLMError, LLMRetryableError, complete

API_KEY = "sk-ant-test-secret-456"
MESSAGES = [
    {"role": "system", "content": "You check refunds against the policy."},
    {"role": "user", "content": "May we refund 740.00 EUR for order A-1004?"},
]
SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "reject", "escalate"]},
        "rationale": {"type": "string"},
    },
    "required": ["decision", "rationale"],
}
VERDICT = {"decision": "escalate", "rationale": "Above 500.00 EUR: finance must sign off."}


@pytest.fixture
def endpoint(settings, llm_server):
    settings.STUDIOX_LLM_PROVIDER = "anthropic"
    settings.STUDIOX_LLM_MODEL = "claude-test"
    settings.STUDIOX_LLM_BASE_URL = llm_server.url
    settings.STUDIOX_LLM_API_KEY = API_KEY
    settings.STUDIOX_LLM_TIMEOUT_SECONDS = 5.0
    settings.STUDIOX_LLM_MAX_TOKENS = 321
    return llm_server


def message_reply(*content: dict, input_tokens: int = 40, output_tokens: int = 12) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20250101",
        "content": list(content),
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(value: dict) -> dict:
    return {"type": "tool_use", "id": "toolu_1", "name": "answer", "input": value}


def test_it_posts_to_messages_with_the_key_the_version_and_the_system_prompt(endpoint):
    endpoint.reply(message_reply(text("It needs finance sign-off.")))
    result = complete(messages=MESSAGES)
    request = endpoint.received[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body["model"] == "claude-test"
    assert request.body["max_tokens"] == 321
    assert request.body["system"] == "You check refunds against the policy."
    assert request.body["messages"] == [MESSAGES[1]]
    assert "tools" not in request.body
    assert result.provider == "anthropic"
    assert result.model == "claude-test-20250101"
    assert result.content == "It needs finance sign-off."
    assert (result.input_tokens, result.output_tokens) == (40, 12)


def test_a_schema_becomes_a_tool_the_model_must_call(endpoint):
    endpoint.reply(message_reply(tool_use(VERDICT)))
    result = complete(messages=MESSAGES, schema=SCHEMA)
    body = endpoint.received[0].body
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
    assert result.parsed == VERDICT
    assert json.loads(result.content) == VERDICT


def test_a_rate_limit_is_retryable_after_the_time_the_server_asks(endpoint):
    endpoint.reply(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}},
        status=429,
        headers={"retry-after": "12"},
    )
    with pytest.raises(LLMRetryableError, match="429") as caught:
        complete(messages=MESSAGES)
    assert caught.value.retry_after == 12.0


def test_an_overloaded_api_is_retryable(endpoint):
    endpoint.reply(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        status=529,
    )
    with pytest.raises(LLMRetryableError, match="Overloaded"):
        complete(messages=MESSAGES)


def test_an_invalid_request_is_an_llm_error(endpoint):
    endpoint.reply(
        {"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}},
        status=400,
    )
    with pytest.raises(LLMError, match=r"400.*bad model"):
        complete(messages=MESSAGES)


def test_a_reply_without_content_blocks_is_an_llm_error(endpoint):
    endpoint.reply({"type": "message", "content": "not a list"})
    with pytest.raises(LLMError, match="no content blocks"):
        complete(messages=MESSAGES)


def test_a_tool_input_that_keeps_breaking_the_schema_is_an_llm_error(endpoint):
    for _ in range(2):
        endpoint.reply(message_reply(tool_use({"decision": "approve"})))
    with pytest.raises(LLMError, match="'rationale' is a required property"):
        complete(messages=MESSAGES, schema=SCHEMA)
    retry = endpoint.received[1].body
    assert retry["system"] == MESSAGES[0]["content"]
    assert [m["role"] for m in retry["messages"]] == ["user", "assistant", "user"]


def test_the_recorded_result_never_contains_the_api_key(endpoint):
    endpoint.reply(message_reply(tool_use(VERDICT)))
    assert API_KEY not in json.dumps(complete(messages=MESSAGES, schema=SCHEMA).to_json())
