"""LLM providers behind one interface, chosen by STUDIOX_LLM_PROVIDER (docs/operating.md).

    from integrations import llm
    result = llm.complete(messages=[{"role": "user", "content": "…"}], schema={...})
    result.parsed  # the reply as a dict, valid against the schema

`LLMRetryableError` (rate limits, 5xx, time-outs, connection errors) is worth another try
after a back-off; `LLMError` is not. `LLMRateLimited`, a kind of it, says the call would go
over our own STUDIOX_LLM_RATE_LIMIT or STUDIOX_LLM_TOKENS_PER_MINUTE and when its slot is.
"""

import json
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from integrations import ratelimit
from integrations.llm import anthropic, offline, openai
from integrations.llm.base import (
    LLMError,
    LLMRateLimited,
    LLMResult,
    LLMRetryableError,
    ProviderConfig,
    Reply,
)

__all__ = ["LLMError", "LLMRateLimited", "LLMResult", "LLMRetryableError", "complete"]

PROVIDERS: dict[str, Callable[..., Reply]] = {
    "offline": offline.send,
    "openai": openai.send,
    "anthropic": anthropic.send,
}
ROLES = ("system", "user", "assistant")
# A reply that breaks the schema is shown its error and asked once more before giving up.
SCHEMA_ATTEMPTS = 2
FENCED = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class _InvalidReply(Exception):
    """What is wrong with a reply, phrased to follow "That reply …"."""


def complete(*, messages: list[dict], schema: dict | None = None, waiter: str = "") -> LLMResult:
    """Ask the configured provider; with `schema` (a JSON Schema for an object) the reply must
    be a JSON object valid against it, returned as `parsed`.

    Raises LLMRetryableError for passing trouble (LLMRateLimited over our own rate limits,
    where `waiter` names the caller's place in the queue), LLMError for a malformed reply or
    one that still breaks the schema after a second chance, ValueError for bad arguments.
    """
    _check_messages(messages)
    validator = _validator(schema) if schema is not None else None
    name = settings.STUDIOX_LLM_PROVIDER
    if name not in PROVIDERS:
        raise ImproperlyConfigured(f"Unexpected STUDIOX_LLM_PROVIDER={name}, use {list(PROVIDERS)}")
    config = ProviderConfig.from_settings()
    if name != "offline" and not config.model:
        raise ImproperlyConfigured(f"STUDIOX_LLM_MODEL is required with {name}")
    reserved = 0
    started = time.perf_counter()
    conversation = list(messages)
    input_tokens = output_tokens = 0
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        hold = _hold_call(name, config, waiter=waiter)  # a second call counts as a call too
        try:
            if attempt == 1:  # the tokens of both are settled below
                reserved = _reserve_tokens(name, messages, config, waiter=waiter)
            reply = PROVIDERS[name](messages=conversation, schema=schema, config=config)
        finally:
            if hold is not None:
                ratelimit.release(hold)
        input_tokens += reply.input_tokens
        output_tokens += reply.output_tokens
        if validator is None:
            parsed = None
            break
        try:
            parsed = _parsed(reply, validator)
            break
        except _InvalidReply as exc:
            if attempt == SCHEMA_ATTEMPTS:
                raise LLMError(f"{name} reply {exc} (after {attempt} attempts)") from None
            conversation = [
                *messages,
                {"role": "assistant", "content": reply.content},
                {
                    "role": "user",
                    "content": f"That reply {exc}. Answer again with only a JSON object "
                    "that matches the schema.",
                },
            ]
    _settle_tokens(name, reserved=reserved, used=input_tokens + output_tokens)
    return LLMResult(
        model=reply.model,
        content=reply.content,
        parsed=parsed,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        provider=name,
    )


def _hold_call(provider: str, config: ProviderConfig, *, waiter: str) -> ratelimit.Hold | None:
    """A slot under STUDIOX_LLM_RATE_LIMIT held for the call about to be sent (None without
    a limit); LLMRateLimited, with the next slot, when the window is full."""
    if not settings.STUDIOX_LLM_RATE_LIMIT:
        return None
    rate = ratelimit.parse(settings.STUDIOX_LLM_RATE_LIMIT)
    taken = ratelimit.try_hold(
        f"llm:{provider}", rate, waiter=waiter, hold_seconds=config.timeout_seconds
    )
    if isinstance(taken, ratelimit.Hold):
        return taken
    words = f"the language model's rate limit ({provider}, {rate})"
    raise LLMRateLimited(next_slot=taken, limit=words)


def _reserve_tokens(
    provider: str, messages: list[dict], config: ProviderConfig, *, waiter: str
) -> int:
    """Reserve the call's likely tokens under STUDIOX_LLM_TOKENS_PER_MINUTE (what the prompt
    may count plus the longest reply); the tokens reserved. LLMRateLimited, with the next
    slot, when they do not fit beside what the last minute used."""
    per_minute = settings.STUDIOX_LLM_TOKENS_PER_MINUTE
    if per_minute <= 0:
        return 0
    # About four characters a token: an estimate, settled with the real count afterwards.
    estimate = sum(len(m["content"]) for m in messages) // 4 + config.max_tokens
    reserved = min(estimate, per_minute)
    rate = ratelimit.Rate(limit=per_minute, seconds=60)
    slot = ratelimit.try_acquire(f"llm:{provider}:tokens", rate, weight=reserved, waiter=waiter)
    if slot is not None:
        words = f"the language model's token limit ({provider}, {per_minute} tokens/min)"
        raise LLMRateLimited(next_slot=slot, limit=words)
    return reserved


def _settle_tokens(provider: str, *, reserved: int, used: int) -> None:
    """Record what the call really used in place of the estimate reserved before it."""
    per_minute = settings.STUDIOX_LLM_TOKENS_PER_MINUTE
    if per_minute > 0 and reserved:
        rate = ratelimit.Rate(limit=per_minute, seconds=60)
        ratelimit.record_usage(f"llm:{provider}:tokens", rate, weight=used - reserved)


def _check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for number, message in enumerate(messages, start=1):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise ValueError(
                f"message {number} must be a dict with a role in {ROLES} and a string content"
            )


def _validator(schema: dict):
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValueError('schema must be a JSON Schema for an object ({"type": "object", …})')
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from exc
    return cls(schema)


def _parsed(reply: Reply, validator) -> dict:
    """The reply as a dict valid against the schema."""
    value = reply.parsed
    if value is None:
        text = reply.content
        if fenced := FENCED.match(text):
            text = fenced.group(1)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _InvalidReply(f"is not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise _InvalidReply(f"is JSON but not an object ({type(value).__name__})")
    errors = sorted(validator.iter_errors(value), key=lambda error: list(error.path))
    if errors:
        first = errors[0]
        where = "/".join(str(part) for part in first.path) or "the top level"
        raise _InvalidReply(f"does not match the schema: {first.message} (at {where})")
    return value
