"""Anthropic's Messages API: POST {base_url}/v1/messages.

A schema becomes a tool the model must call, whose input is the answer: the API's own way to
get an object back. System messages go to the top-level "system" field.
"""

import json

from integrations.llm.base import LLMError, ProviderConfig, Reply
from integrations.llm.http import post_json

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
ANSWER_TOOL = "answer"


def send(*, messages: list[dict], schema: dict | None, config: ProviderConfig) -> Reply:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    body: dict = {
        "model": config.model,
        "max_tokens": config.max_tokens,
        "messages": [
            {"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"
        ],
    }
    if system:
        body["system"] = system
    if schema is not None:
        body["tools"] = [
            {
                "name": ANSWER_TOOL,
                "description": "Give the answer as this tool's input.",
                "input_schema": schema,
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}
    data = post_json(
        provider="anthropic",
        url=f"{config.base_url or DEFAULT_BASE_URL}/v1/messages",
        headers={"x-api-key": config.api_key, "anthropic-version": API_VERSION},
        body=body,
        config=config,
    )
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        raise LLMError("anthropic reply has no content blocks")
    blocks = [block for block in blocks if isinstance(block, dict)]
    tool_input = next((b.get("input") for b in blocks if b.get("type") == "tool_use"), None)
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    if tool_input is not None:
        content = json.dumps(tool_input, ensure_ascii=False)
    elif text:
        content = text
    else:
        raise LLMError("anthropic reply has neither text nor a tool call")
    usage = data.get("usage") or {}
    return Reply(
        model=data.get("model") or config.model,
        content=content,
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        parsed=tool_input,
    )
