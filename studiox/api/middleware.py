"""Answers for /api/ requests that never reach a view: oversized bodies, hosts this server does
not answer for, and unknown URLs."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
# More digits than any byte count a server could hold; int() would also refuse very long ones.
MAX_LENGTH_DIGITS = 18

HOST_REFUSED = "The Host header names a host this server does not answer for."

logger = logging.getLogger("studiox.api")


def body_too_large(limit: int) -> str:
    return f"The request body is larger than the server accepts; the limit is {limit} bytes."


def content_length_refusal(raw: str | None, limit: int | None) -> tuple[int, str] | None:
    """(status, message) refusing a declared Content-Length, or None when it may be read.

    Shared by the ASGI edge (`studiox.body_limit`) and Django's middleware, so a body is refused
    by the same rules whichever server runs the application."""
    if raw is None:
        return None
    text = raw.strip()
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        return 400, f"Content-Length '{text[:40]}' is not a number."
    if text.startswith("-"):
        return 400, "Content-Length must not be negative."
    if limit is None:
        return None
    if len(digits) > MAX_LENGTH_DIGITS or int(digits) > limit:
        return 413, body_too_large(limit)
    return None


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": {}}, status=status)


class ApiRequestLimitMiddleware:
    """For /api/: a JSON 400 for a Host not in ALLOWED_HOSTS (instead of Django's HTML page and
    traceback), 413 JSON for bodies over DATA_UPLOAD_MAX_MEMORY_SIZE checked before anything
    reads them (DRF's parsers read the stream directly, so Django's own check would not fire;
    under ASGI the edge refuses them even earlier, this keeps WSGI servers covered), and JSON
    instead of HTML for /api/ URLs that match no view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        refused = self._refuse_host(request) or self._refuse_body(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        if response.status_code == 404 and "json" not in response.get("Content-Type", ""):
            return _error(404, f"No API endpoint at {request.path}.")
        return response

    @staticmethod
    def _refuse_host(request: HttpRequest) -> JsonResponse | None:
        try:
            request.get_host()
        except DisallowedHost as exc:
            # A scanner's or a misrouted request, not a bug: one line, no traceback.
            logger.warning("Refused %s %s: %s", request.method, request.path, exc)
            response = _error(400, HOST_REFUSED)
            # The line above says why; Django's request log would add a second, vaguer one.
            response._has_been_logged = True
            return response
        return None

    @staticmethod
    def _refuse_body(request: HttpRequest) -> JsonResponse | None:
        refusal = content_length_refusal(
            request.META.get("CONTENT_LENGTH") or None, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        return _error(*refusal) if refusal is not None else None
