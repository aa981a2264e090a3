"""Limits every piece of client input obeys before it reaches the database or recursive code.

- NUL (U+0000): PostgreSQL text and jsonb cannot store it (the insert fails with an error, not
  a refusal), so it is refused wherever it comes in, on every database alike.
- JSON nesting: Python's json, pydantic, deep copies and serializers all recurse, and a 2 KB
  body can nest a thousand levels; documents deeper than MAX_JSON_DEPTH are refused before
  anything walks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

NUL = "\x00"
MAX_JSON_DEPTH = 64
NUL_MESSAGE = "NUL characters (U+0000) are not allowed."
TOO_DEEP_MESSAGE = f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not allowed."
API_PREFIX = "/api/"

# A JSON string (skipped whole, brackets inside it do not nest) or one bracket.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


@dataclass(frozen=True)
class Problem:
    """Where a value breaks a limit (a JSON path such as `payload.items[2]`) and how."""

    path: str
    message: str


def json_text_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests more than `limit` arrays or objects, found without parsing it."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _shown(key: str) -> str:
    return key.replace(NUL, "\\u0000")


def json_problem(value: Any, path: str = "", limit: int = MAX_JSON_DEPTH) -> Problem | None:
    """The first NUL (in a key or a string) or nesting past `limit`, walked without recursion."""
    pending: list[tuple[str, Any, int]] = [(path, value, 0)]
    while pending:
        where, item, depth = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return Problem(where, NUL_MESSAGE)
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= limit:
            return Problem(where, TOO_DEEP_MESSAGE)
        children: Iterable[tuple[str, Any]]
        if isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and NUL in key:
                    return Problem(_join(where, _shown(key)), NUL_MESSAGE)
            children = ((_join(where, str(key)), inner) for key, inner in item.items())
        else:
            children = ((f"{where}[{index}]", inner) for index, inner in enumerate(item))
        # Reversed onto the stack, so the first problem in document order is found first.
        pending.extend((child, inner, depth + 1) for child, inner in reversed(list(children)))
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def request_nul(request: HttpRequest) -> str | None:
    """Where the request holds a NUL: "path", a query parameter, a form field or a cookie."""
    if NUL in request.path:
        return "path"
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or NUL in query:
        found = _first_nul_item(request.GET.lists())
        if found is not None:
            return found
    if request.method == "POST" and _is_form(request):
        found = _first_nul_item(request.POST.lists())
        if found is not None:
            return found
    # The session cookie is looked up in the database.
    cookie = _first_nul_item((name, [value]) for name, value in request.COOKIES.items())
    return f"cookie {cookie}" if cookie is not None else None


def _is_form(request: HttpRequest) -> bool:
    return request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def _first_nul_item(items: Iterable[tuple[str, list[str]]]) -> str | None:
    for name, values in items:
        if NUL in name:
            return _shown(name)
        if any(NUL in value for value in values):
            return name
    return None


class RefuseNulMiddleware:
    """400 for a NUL in the path, the query string, a form body or a cookie, naming where it
    is: JSON under /api/, a plain message on the pages and the admin. JSON bodies are checked
    by the API's parser, which knows their structure."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = request_nul(request)
        if where is None:
            return self.get_response(request)
        detail = f"Invalid request: {where}: {NUL_MESSAGE}"
        if request.path.startswith(API_PREFIX):
            return JsonResponse({"detail": detail, "errors": {where: [NUL_MESSAGE]}}, status=400)
        return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")
