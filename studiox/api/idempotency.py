"""The `Idempotency-Key` header: a repeat with the same key and body gets the first answer.

The services store the key with what it created (per user), so the guarantee holds across
processes and restarts; this module only reads and checks the header.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

HEADER = "Idempotency-Key"
MAX_LENGTH = 200

PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the request safe to repeat: the same key with the same body returns the first "
        "answer (200); the same key with a different body is refused (409). Keys are per user, "
        f"at most {MAX_LENGTH} printable ASCII characters."
    ),
)


def idempotency_key(request: Request) -> str:
    """The request's Idempotency-Key, or "" when it has none."""
    key = request.headers.get(HEADER, "").strip()
    if len(key) > MAX_LENGTH:
        raise ValidationError({HEADER: [f"Use at most {MAX_LENGTH} characters."]})
    if not all(" " <= char <= "~" for char in key):
        raise ValidationError({HEADER: ["Use printable ASCII characters only."]})
    return key
