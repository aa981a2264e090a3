"""The offline provider: deterministic, no network, so StudioX runs air-gapped.

Without a schema it answers with a placeholder derived from the conversation; with one, with
the smallest plausible object the schema allows (defaults, first enum values, lower bounds).
"""

import hashlib
import json
import textwrap
from typing import Any

from integrations.llm.base import LLMError, ProviderConfig, Reply

MODEL = "studiox-offline-1"
MAX_DEPTH = 32
# Optional properties are filled in near the top only, so recursive schemas stay finite.
OPTIONAL_DEPTH = 4
STRING_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "email": "offline@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def send(*, messages: list[dict], schema: dict | None, config: ProviderConfig) -> Reply:
    if schema is None:
        content = _placeholder(messages)
        parsed = None
    else:
        parsed = example(schema)
        content = json.dumps(parsed, ensure_ascii=False)
    prompt = "".join(message["content"] for message in messages)
    return Reply(
        model=config.model or MODEL,
        content=content,
        input_tokens=_tokens(prompt),
        output_tokens=_tokens(content),
        parsed=parsed,
    )


def example(schema: dict) -> Any:
    """A small value valid for `schema` in the common cases (local $refs included)."""
    return _example(schema, schema, "value", 0)


def _placeholder(messages: list[dict]) -> str:
    request = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    quoted = textwrap.shorten(" ".join(request.split()), width=200, placeholder=" …")
    return (
        f'Offline reply {digest} to "{quoted}": no language model is configured '
        "(STUDIOX_LLM_PROVIDER=offline), so this answer is a deterministic placeholder."
    )


def _tokens(text: str) -> int:
    # About four characters per token, as the hosted tokenizers average on English.
    return (len(text) + 3) // 4


def _example(schema: Any, root: dict, name: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise LLMError("offline provider: the schema nests too deep to build an example")
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return _example({**_resolve(root, schema["$ref"]), **rest}, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    for keyword in ("anyOf", "oneOf"):
        if schema.get(keyword):
            return _example(schema[keyword][0], root, name, depth + 1)
    if schema.get("allOf"):
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            merged = _merge(merged, _resolve(root, part["$ref"]) if "$ref" in part else part)
        return _example(merged, root, name, depth + 1)
    kind = _type(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        items = schema.get("items", {})
        return [_example(items, root, name, depth + 1) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return False
    return None


def _type(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind:
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _object(schema: dict, root: dict, depth: int) -> dict:
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    names = [n for n in properties if n in required or depth < OPTIONAL_DEPTH]
    names += [n for n in required if n not in properties]
    return {n: _example(properties.get(n, {}), root, n, depth + 1) for n in names}


def _string(schema: dict, name: str) -> str:
    if schema.get("format") in STRING_FORMATS:
        return STRING_FORMATS[schema["format"]]
    text = f"offline {name}"
    text = text.ljust(schema.get("minLength", 0), ".")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _number(schema: dict, kind: str) -> int | float:
    value: int | float = 0
    if "minimum" in schema:
        value = schema["minimum"]
    elif type(schema.get("exclusiveMinimum")) in (int, float):  # a bool in old drafts
        value = schema["exclusiveMinimum"] + 1
    if "maximum" in schema and value > schema["maximum"]:
        value = schema["maximum"]
    return int(value) if kind == "integer" else value


def _merge(base: dict, extra: dict) -> dict:
    merged = {**base, **extra}
    merged["properties"] = {**base.get("properties", {}), **extra.get("properties", {})}
    merged["required"] = [*base.get("required", []), *extra.get("required", [])]
    return merged


def _resolve(root: dict, ref: str) -> dict:
    if not ref.startswith("#"):
        raise LLMError(f"offline provider: cannot follow the non-local $ref {ref!r}")
    target: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        try:
            target = target[int(part)] if isinstance(target, list) else target[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise LLMError(f"offline provider: $ref {ref!r} points nowhere") from exc
    return target
