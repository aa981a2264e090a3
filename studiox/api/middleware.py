"""Answers for /api/ requests that never reach a view: oversized bodies and unknown URLs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": {}}, status=status)


class ApiRequestLimitMiddleware:
    """413 JSON for /api/ bodies over DATA_UPLOAD_MAX_MEMORY_SIZE, checked before anything reads
    them (DRF's parsers read the stream directly, so Django's own check would not fire), and
    JSON instead of HTML for /api/ URLs that match no view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        refused = self._refuse_body(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        if response.status_code == 404 and "json" not in response.get("Content-Type", ""):
            return _error(404, f"No API endpoint at {request.path}.")
        return response

    def _refuse_body(self, request: HttpRequest) -> JsonResponse | None:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return _error(400, f"Content-Length '{raw[:40]}' is not a number.")
        if length < 0:
            return _error(400, "Content-Length must not be negative.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            return _error(413, f"The request body has {length} bytes; the limit is {limit} bytes.")
        return None
