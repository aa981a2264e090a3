"""External events through the API (docs/api.md): delivered to the missions waiting for them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from missions.services import event_deliver
from studiox.api import permissions
from studiox.api.base import BAD_REQUEST, UNAUTHENTICATED, ApiView, error_response, validated
from studiox.api.idempotency import PARAMETER as IDEMPOTENCY_KEY
from studiox.api.idempotency import idempotency_key
from studiox.api.serializers import EventResultSerializer, EventSerializer


class EventsView(ApiView):
    permission_classes = [permissions.CanSendEvents]

    @extend_schema(
        operation_id="events_send",
        summary="Deliver an external event to the missions waiting for it",
        description="Wakes every mission waiting for this event and key; with none waiting, "
        "the event is kept for the first mission that waits for it. Needs the "
        "missions.add_event permission.",
        parameters=[IDEMPOTENCY_KEY],
        request=EventSerializer,
        responses={
            202: EventResultSerializer,
            200: OpenApiResponse(EventResultSerializer, description="Idempotent repeat."),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: error_response("No missions.add_event permission."),
            409: error_response("The Idempotency-Key was used for a different event."),
            413: error_response("The body is too large."),
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(EventSerializer, request.data)
        result = event_deliver(
            event=body["event"],
            key=body["key"],
            payload=body["payload"],
            sent_by=request.user,
            idempotency_key=idempotency_key(request),
        )
        return Response(
            EventResultSerializer(result).data,
            status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK,
        )
