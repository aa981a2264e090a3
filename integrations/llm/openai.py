"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio…): POST /chat/completions.

STUDIOX_LLM_BASE_URL includes the version prefix, e.g. http://127.0.0.1:11434/v1.
"""

import re

from integrations.llm.base import LLMError, ProviderConfig, Reply
from integrations.llm.http import post_json

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def send(*, messages: list[dict], schema: dict | None, config: ProviderConfig) -> Reply:
    body: dict = {"model": config.model, "messages": messages}
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(schema), "schema": schema},
        }
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    data = post_json(
        provider="openai",
        url=f"{config.base_url or DEFAULT_BASE_URL}/chat/completions",
        headers=headers,
        body=body,
        config=config,
    )
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError("openai reply has no choices[0].message") from exc
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        refusal = message.get("refusal") if isinstance(message, dict) else None
        reason = f" (refusal: {refusal})" if refusal else ""
        raise LLMError(f"openai reply has no text content{reason}")
    usage = data.get("usage") or {}
    return Reply(
        model=data.get("model") or config.model,
        content=content,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


def _schema_name(schema: dict) -> str:
    """The json_schema name: the schema's title in the characters the API accepts."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "response"))
    return name[:64]
