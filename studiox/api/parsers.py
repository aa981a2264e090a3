"""JSON request bodies within the limits in `studiox.safe_input`: no deeper than MAX_JSON_DEPTH,
no NUL characters; a body past either is a 400 naming the limit or the field."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from studiox.safe_input import TOO_DEEP_MESSAGE, json_problem, json_text_too_deep


def _text_encoding(parser_context: dict | None) -> str:
    encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
    try:
        # str.encode accepts text codecs only: a bytes codec (bz2_codec, zlib_codec) would
        # inflate the body after its size was checked.
        "".encode(encoding)
    except (LookupError, UnicodeError) as exc:
        raise ParseError(f"Unsupported charset '{encoding}' in the Content-Type header.") from exc
    return encoding


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = _text_encoding(parser_context)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        # Checked on the text: json.loads itself recurses once per level.
        if json_text_too_deep(text):
            raise ParseError(f"JSON parse error - {TOO_DEEP_MESSAGE}")
        try:
            parse_constant = json.strict_constant if self.strict else None
            data = json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        # A NUL can only arrive as the escape \u0000: a body without one needs no walk.
        if "\\u0000" in text:
            problem = json_problem(data)
            if problem is not None:
                raise ValidationError({problem.path or "body": [problem.message]})
        return data
