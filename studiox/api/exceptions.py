"""Every API error is JSON `{"detail": "...", "errors": {...}}`; a known error is never a 500."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from decisions.services import (
    DecisionAlreadyDecided,
    DecisionError,
    DecisionNotAllowed,
)
from missions.services import (
    MissionConflict,
    MissionError,
    MissionInputError,
    MissionPermissionDenied,
    UnknownMissionType,
)

logger = logging.getLogger("studiox.api")


@dataclass(frozen=True)
class ApiError:
    """An error as the API and the MCP server report it."""

    status: int
    detail: str
    errors: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"detail": self.detail, "errors": self.errors}


def _input_errors(errors: dict[str, list[str]]) -> dict[str, Any]:
    # A non-object input has no fields: its message belongs to "input" itself.
    if set(errors) <= {"input"}:
        return {"input": errors.get("input", [])}
    return {"input": errors}


def domain_error(exc: Exception) -> ApiError | None:
    """The API answer for an exception of the apps' services, or None if it is not one."""
    if isinstance(exc, MissionInputError):
        return ApiError(
            400, f"Invalid mission input: {_summary(exc.errors)}", _input_errors(exc.errors)
        )
    if isinstance(exc, UnknownMissionType):
        return ApiError(400, str(exc), {"type": [str(exc)]})
    if isinstance(exc, MissionConflict):
        return ApiError(409, str(exc))
    if isinstance(exc, MissionPermissionDenied):
        return ApiError(403, str(exc))
    if isinstance(exc, MissionError):
        return ApiError(400, str(exc))
    if isinstance(exc, DecisionAlreadyDecided):
        return ApiError(409, str(exc))
    if isinstance(exc, DecisionNotAllowed):
        return ApiError(403, str(exc))
    if isinstance(exc, DecisionError):  # DecisionInvalid and any other refusal
        return ApiError(400, str(exc))
    return None


def _summary(errors: Any, prefix: str = "") -> str:
    """One line naming the first problems, e.g. "amount: Input should be greater than 0"."""
    parts: list[str] = []

    def walk(value: Any, path: str) -> None:
        if len(parts) >= 3:
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            parts.append(f"{path}: {value[0]}" if path else str(value[0]))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{path}[{index}]")
        else:
            parts.append(f"{path}: {value}" if path else str(value))

    walk(errors, prefix)
    return "; ".join(parts) or "see errors"


def _validation_error(data: Any) -> ApiError:
    errors = data if isinstance(data, dict) else {"non_field_errors": data}
    return ApiError(400, f"Invalid request: {_summary(errors)}", errors)


def _translate(exc: Exception) -> Exception | ApiError:
    """Django's own exceptions as DRF ones, domain exceptions as API errors."""
    known = domain_error(exc)
    if known is not None:
        return known
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "The request body is larger than the server accepts.")
    if isinstance(exc, DjangoValidationError):
        return _validation_error(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, SuspiciousOperation):
        return ApiError(400, "The request was refused as malformed.")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """The REST_FRAMEWORK EXCEPTION_HANDLER of every API view."""
    translated = _translate(exc)
    if isinstance(translated, ApiError):
        return Response(translated.as_json(), status=translated.status)
    response = drf_exception_handler(translated, context)
    if response is None:
        # A bug, not a request problem: logged with its traceback, answered as JSON.
        logger.exception("Unexpected error in %s", context.get("view").__class__.__name__)
        return Response(
            {"detail": "Internal server error; it has been logged.", "errors": {}},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(translated, exceptions.ValidationError):
        error = _validation_error(response.data)
        response.data = error.as_json()
    else:
        data = response.data
        detail = data.get("detail", data) if isinstance(data, dict) else data
        response.data = {"detail": str(detail), "errors": {}}
    return response
