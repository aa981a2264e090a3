"""What every API view shares: the view class (auth, JSON, throttles), request validation and
the documented error responses. One module per resource beside it (`missions`, `events`,
`decisions`) holds that resource's views."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from studiox.api.authentication import TokenOrBearerAuthentication
from studiox.api.parsers import SafeJSONParser
from studiox.api.serializers import ErrorSerializer
from studiox.api.throttling import AnonThrottle, UserThrottle


def error_response(description: str) -> OpenApiResponse:
    """An error answer for the schema: `{"detail", "errors"}` as `exceptions` writes it."""
    return OpenApiResponse(ErrorSerializer, description=description)


UNAUTHENTICATED = error_response("Not authenticated (token or session).")
BAD_REQUEST = error_response("Invalid request; `errors` names the fields.")


class ApiView(APIView):
    # JSON in and out only (a browser gets JSON errors too), rate-limited. No docstring:
    # drf-spectacular would publish it as every operation's description.
    authentication_classes = [TokenOrBearerAuthentication, SessionAuthentication]
    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [AnonThrottle, UserThrottle]


def validated(serializer_class, data) -> dict:
    """`data` checked by `serializer_class`; a 400 naming the fields otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
