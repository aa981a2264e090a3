"""The Decision Queue through the API (docs/api.md): the caller's decisions, and deciding one."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from decisions.models import Decision
from decisions.selectors import decision_get_for, decisions_of_roles
from decisions.services import DecisionInvalid, decision_decide
from studiox.api.base import BAD_REQUEST, UNAUTHENTICATED, ApiView, error_response, validated
from studiox.api.serializers import (
    MAX_ID,
    DecideSerializer,
    DecisionListQuerySerializer,
    DecisionSerializer,
)

NOT_VISIBLE = error_response("Not visible.")


def _visible_decision(request: Request, decision_id: str) -> Decision:
    decision = None
    # Only ASCII digits in the id range reach the database ("³" is a digit to str.isdigit).
    if decision_id.isascii() and decision_id.isdigit() and int(decision_id) <= MAX_ID:
        decision = decision_get_for(user=request.user, decision_id=decision_id)
    if decision is None:
        raise NotFound(f"No decision {decision_id} is visible to you.")
    return decision


class DecisionsView(ApiView):
    @extend_schema(
        operation_id="decisions_list",
        summary="Your decisions: those for your roles (pending ones by default)",
        parameters=[DecisionListQuerySerializer],
        responses={200: DecisionSerializer(many=True), 400: BAD_REQUEST, 401: UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        query = validated(DecisionListQuerySerializer, request.query_params)
        decisions = decisions_of_roles(
            user=request.user, status=query["status"], search=query.get("q")
        )
        return Response(DecisionSerializer(decisions[: query["limit"]], many=True).data)


class DecisionView(ApiView):
    @extend_schema(
        operation_id="decisions_get",
        summary="One decision with its context and evidence",
        responses={200: DecisionSerializer, 401: UNAUTHENTICATED, 404: NOT_VISIBLE},
    )
    def get(self, request: Request, decision_id: str) -> Response:
        return Response(DecisionSerializer(_visible_decision(request, decision_id)).data)


class DecisionDecideView(ApiView):
    @extend_schema(
        operation_id="decisions_decide",
        summary="Approve or reject a decision; the mission resumes at once",
        request=DecideSerializer,
        responses={
            200: DecisionSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: error_response(
                "Not allowed: not in the role, or four eyes (own mission, two tiers)."
            ),
            404: NOT_VISIBLE,
            409: error_response("Already decided; `detail` names who decided first."),
        },
    )
    def post(self, request: Request, decision_id: str) -> Response:
        decision = _visible_decision(request, decision_id)
        body = validated(DecideSerializer, request.data)
        try:
            decision = decision_decide(
                decision=decision,
                user=request.user,
                outcome=body["outcome"],
                comment=body["comment"],
            )
        except DecisionInvalid as exc:
            # The only thing decide checks for validity is the outcome against the options.
            raise ValidationError({"outcome": [str(exc)]}) from exc
        return Response(DecisionSerializer(decision).data)
