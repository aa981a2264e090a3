"""Missions through the API (docs/api.md): the types, starting, following, cancelling and
retrying. Each view checks the request's shape, then calls one service or selector;
permissions and state rules live there, errors become JSON in `exceptions`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from missions.models import Mission
from missions.selectors import mission_get_for, mission_list, mission_steps, mission_types
from missions.services import mission_cancel, mission_retry, mission_start
from observations.selectors import mission_observations
from studiox.api import permissions
from studiox.api.base import BAD_REQUEST, UNAUTHENTICATED, ApiView, error_response, validated
from studiox.api.idempotency import PARAMETER as IDEMPOTENCY_KEY
from studiox.api.idempotency import idempotency_key
from studiox.api.pagination import NewestFirstCursorPagination
from studiox.api.serializers import (
    CancelSerializer,
    MissionListQuerySerializer,
    MissionSerializer,
    MissionStartSerializer,
    MissionTypeSerializer,
    ObservationListSerializer,
    ObservationQuerySerializer,
    ObservationSerializer,
    StepListSerializer,
    StepSerializer,
)

NOT_FOUND = error_response("No such mission, or it is not visible to you.")
MISSION_ID = OpenApiParameter(
    "mission_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The mission's id."
)


def _visible_mission(request: Request, mission_id: str) -> Mission:
    mission = mission_get_for(user=request.user, mission_id=mission_id)
    if mission is None:
        raise NotFound(f"No mission {mission_id} is visible to you.")
    return mission


class MissionTypesView(ApiView):
    @extend_schema(
        operation_id="mission_types_list",
        summary="Registered mission types with their input JSON Schema",
        responses={200: MissionTypeSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(MissionTypeSerializer(mission_types(), many=True).data)


class MissionsView(ApiView):
    pagination_class = NewestFirstCursorPagination

    @extend_schema(
        operation_id="missions_list",
        summary="Missions visible to you, newest first (cursor-paginated), filtered or searched",
        parameters=[MissionListQuerySerializer],
        responses={200: MissionSerializer(many=True), 400: BAD_REQUEST, 401: UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        filters = validated(MissionListQuerySerializer, request.query_params)
        missions = mission_list(
            user=request.user,
            status=filters.get("status"),
            type=filters.get("type"),
            parent=filters.get("parent"),
            search=filters.get("q"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(missions, request, view=self)
        return paginator.get_paginated_response(MissionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="missions_start",
        summary="Start a mission",
        description="Validates `input` against the type's input JSON Schema and starts the "
        "mission. With an `Idempotency-Key`, a repeat returns the first mission with 200.",
        parameters=[IDEMPOTENCY_KEY],
        request=MissionStartSerializer,
        responses={
            201: MissionSerializer,
            200: OpenApiResponse(MissionSerializer, description="Idempotent repeat."),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            409: error_response("The Idempotency-Key was used for a different request."),
            413: error_response("The body is too large."),
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(MissionStartSerializer, request.data)
        result = mission_start(
            type=body["type"],
            input=body["input"],
            started_by=request.user,
            idempotency_key=idempotency_key(request),
            priority=body["priority"],
        )
        location = reverse("api:mission", args=[result.mission.id], request=request)
        return Response(
            MissionSerializer(result.mission).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
            headers={"Location": location},
        )


class MissionView(ApiView):
    @extend_schema(
        operation_id="missions_get",
        summary="Where a mission stands: status, current step, what it waits on, verdict",
        parameters=[MISSION_ID],
        responses={200: MissionSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, mission_id: str) -> Response:
        return Response(MissionSerializer(_visible_mission(request, mission_id)).data)


class MissionStepsView(ApiView):
    @extend_schema(
        operation_id="missions_steps",
        summary="A mission's checkpoints, in order",
        parameters=[MISSION_ID],
        responses={200: StepListSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, mission_id: str) -> Response:
        mission = _visible_mission(request, mission_id)
        steps = StepSerializer(mission_steps(mission=mission), many=True).data
        return Response({"mission": str(mission.id), "results": steps})


class MissionObservationsView(ApiView):
    @extend_schema(
        operation_id="missions_observations",
        summary="A mission's rail from a sequence number",
        parameters=[MISSION_ID, ObservationQuerySerializer],
        responses={
            200: ObservationListSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, mission_id: str) -> Response:
        mission = _visible_mission(request, mission_id)
        query = validated(ObservationQuerySerializer, request.query_params)
        # One more than asked tells whether the reader should come back at once.
        rows = mission_observations(mission=mission, after=query["after"], limit=query["limit"] + 1)
        page = rows[: query["limit"]]
        return Response(
            {
                "mission": str(mission.id),
                "results": ObservationSerializer(page, many=True).data,
                "last_seq": page[-1].id if page else query["after"],
                "has_more": len(rows) > len(page),
            }
        )


class MissionCancelView(ApiView):
    @extend_schema(
        operation_id="missions_cancel",
        summary="Cancel a mission that has not finished",
        description="Its requester or an operator (missions.change_mission) may cancel it; "
        "pending decisions are withdrawn.",
        parameters=[MISSION_ID],
        request=CancelSerializer,
        responses={
            200: MissionSerializer,
            401: UNAUTHENTICATED,
            403: error_response("Neither its requester nor an operator."),
            404: NOT_FOUND,
            409: error_response("The mission has already finished."),
        },
    )
    def post(self, request: Request, mission_id: str) -> Response:
        mission = _visible_mission(request, mission_id)
        if not permissions.can_cancel(request.user, mission):
            raise PermissionDenied(permissions.CANNOT_CANCEL)
        body = validated(CancelSerializer, request.data)
        mission = mission_cancel(mission=mission, by=request.user, reason=body["reason"])
        return Response(MissionSerializer(mission).data)


class MissionRetryView(ApiView):
    @extend_schema(
        operation_id="missions_retry",
        summary="Run a failed mission again from its failed step",
        parameters=[MISSION_ID],
        request=None,
        responses={
            200: MissionSerializer,
            401: UNAUTHENTICATED,
            403: error_response("Not an operator (missions.change_mission)."),
            404: NOT_FOUND,
            409: error_response("The mission has not failed."),
        },
    )
    def post(self, request: Request, mission_id: str) -> Response:
        mission = _visible_mission(request, mission_id)
        if not permissions.can_retry(request.user, mission):
            raise PermissionDenied(permissions.CANNOT_RETRY)
        return Response(MissionSerializer(mission_retry(mission=mission, by=request.user)).data)
