"""The offline provider (the default): deterministic, no network, schema-valid."""

import json
from decimal import Decimal
from typing import Literal

import pytest
from django.core.exceptions import ImproperlyConfigured
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from integrations.llm import LLMError, complete
from tests.support.network import closed_port_url

MESSAGES = [
    {"role": "system", "content": "You check refunds against the policy."},
    {"role": "user", "content": "May we refund 120.00 EUR for order A-1001?"},
]


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class Verdict(BaseModel):
    decision: Literal["approve", "reject", "escalate"]
    amount: Decimal
    rationale: str = Field(min_length=20, max_length=40)
    lines: list[Line] = Field(min_length=1)
    citation: str | None = None
    confidence: float = Field(gt=0.5, le=1)


def test_it_is_the_default_provider_and_answers_without_a_network(settings):
    settings.STUDIOX_LLM_BASE_URL = closed_port_url()
    result = complete(messages=MESSAGES)
    assert result.provider == "offline"
    assert result.model == "studiox-offline-1"
    assert "A-1001" in result.content
    assert result.parsed is None
    assert result.input_tokens > 0 and result.output_tokens > 0


def test_it_gives_the_same_answer_to_the_same_messages():
    first, second = complete(messages=MESSAGES), complete(messages=MESSAGES)
    other = complete(messages=[*MESSAGES[:1], {"role": "user", "content": "And A-1002?"}])
    assert {**first.to_json(), "latency_ms": 0} == {**second.to_json(), "latency_ms": 0}
    assert other.content != first.content


def test_its_reply_satisfies_a_pydantic_schema():
    schema = Verdict.model_json_schema()
    result = complete(messages=MESSAGES, schema=schema)
    assert not list(Draft202012Validator(schema).iter_errors(result.parsed))
    verdict = Verdict.model_validate(result.parsed)
    assert verdict.decision == "approve"
    assert verdict.lines[0].quantity == 1
    assert json.loads(result.content) == result.parsed
    assert result.parsed == complete(messages=MESSAGES, schema=schema).parsed


def test_its_reply_uses_defaults_constants_and_formats():
    schema = {
        "type": "object",
        "properties": {
            "currency": {"const": "EUR"},
            "priority": {"type": "integer", "default": 3},
            "due": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "urgent": {"type": "boolean"},
        },
        "required": ["currency", "priority", "due", "tags", "urgent"],
    }
    parsed = complete(messages=MESSAGES, schema=schema).parsed
    assert parsed == {
        "currency": "EUR",
        "priority": 3,
        "due": "1970-01-01",
        "tags": ["offline tags", "offline tags"],
        "urgent": False,
    }


def test_a_schema_it_cannot_satisfy_is_an_llm_error():
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}},
        "required": ["code"],
    }
    with pytest.raises(LLMError, match="does not match the schema"):
        complete(messages=MESSAGES, schema=schema)


@pytest.mark.parametrize(
    ("messages", "schema", "problem"),
    [
        ([], None, "non-empty list"),
        ([{"role": "robot", "content": "hi"}], None, "role"),
        ([{"role": "user", "content": 42}], None, "string content"),
        (MESSAGES, {"type": "array"}, "for an object"),
        (MESSAGES, {"type": "object", "properties": 3}, "not a valid JSON Schema"),
    ],
)
def test_it_refuses_bad_arguments(messages, schema, problem):
    with pytest.raises(ValueError, match=problem):
        complete(messages=messages, schema=schema)


def test_an_unknown_provider_is_a_configuration_error(settings):
    settings.STUDIOX_LLM_PROVIDER = "oracle"
    with pytest.raises(ImproperlyConfigured, match="oracle"):
        complete(messages=MESSAGES)
