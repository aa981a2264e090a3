"""What the API reads and writes. Serializers validate shapes; the services decide."""

from __future__ import annotations

import copy
from functools import cached_property
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from decisions.models import Decision
from missions.models import Mission, Step
from missions.runtime import MissionDefinition
from missions.selectors import mission_children, mission_queue_place
from observations.models import Observation

MAX_ID = 2**63 - 1  # the largest database id; a larger number must be a 400, not an overflow


class ModelSerializer(serializers.ModelSerializer):
    """A read-only model serializer whose fields are worked out once per class.

    DRF works a model serializer's fields out of the model again for every instance (about
    2 ms for a mission, on every answer), and deep-copies declared fields, model fields and
    choices included. These fields depend only on the class and only read. A field is bound
    to its serializer, so it cannot be shared: each instance gets a shallow copy of a field
    bound once per class, pointed at itself (building and binding 26 fields anew was 60% of
    a mission's answer). A field that holds other fields (a nested serializer, a list of a
    child field) is built and bound anew, its children with it."""

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        if "_built_fields" not in cls.__dict__:
            cls._built_fields = super().get_fields()
        return {name: _fresh(field) for name, field in cls._built_fields.items()}

    @cached_property
    def fields(self) -> BindingDict:
        fields = BindingDict(self)
        for name, bound in self._bound_fields().items():
            if _holds_fields(bound):
                fields[name] = _fresh(type(self)._built_fields[name])  # binds it and its own
            else:
                field = object.__new__(type(bound))  # copy.copy, at a fifth of its CPU
                field.__dict__.update(bound.__dict__, parent=self)
                fields.fields[name] = field
        return fields

    @classmethod
    def _bound_fields(cls) -> dict[str, serializers.Field]:
        if "_bound" not in cls.__dict__:
            bound = cls().get_fields()
            for name, field in bound.items():
                field.bind(field_name=name, parent=None)
            cls._bound = bound  # complete before another thread can see it
        return cls._bound


def _fresh(field: serializers.Field) -> serializers.Field:
    if _holds_fields(field):
        return copy.deepcopy(field)  # its children are bound to it: built anew they refuse
    return type(field)(*field._args, **field._kwargs)


def _holds_fields(field: serializers.Field) -> bool:
    return isinstance(field, serializers.BaseSerializer) or hasattr(field, "child")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    errors = serializers.DictField(
        help_text='Field errors, e.g. {"input": {"amount": ["..."]}}; empty when none.'
    )


class MissionTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    input_schema = serializers.SerializerMethodField(help_text="JSON Schema of the input.")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_input_schema(self, definition: MissionDefinition) -> dict[str, Any]:
        return definition.input_schema()


class MissionStartSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=100, help_text="A name from GET /api/mission-types/.")
    input = serializers.JSONField(
        default=dict, help_text="The mission's input; it must match the type's input_schema."
    )
    priority = serializers.IntegerField(
        min_value=-10,
        max_value=10,
        default=0,
        help_text="Higher first: takes free concurrency slots and worker time before lower "
        "priorities (which still get every fifth free slot).",
    )

    def validate_input(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Mission input must be a JSON object.")
        return value


class MissionChildSerializer(ModelSerializer):
    class Meta:
        model = Mission
        fields = ["id", "type", "status", "outcome", "summary", "verdict"]
        read_only_fields = fields


class QueuePlaceSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1: admitted at the next free slot.")
    total = serializers.IntegerField(help_text="Missions queued for the same slots.")


class MissionSerializer(ModelSerializer):
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cancelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    parent = serializers.UUIDField(
        source="parent_id",
        read_only=True,
        allow_null=True,
        help_text="The mission that started this one (ctx.start_mission), or null.",
    )
    children = serializers.SerializerMethodField(
        help_text="The missions this one started, in the order it started them."
    )

    queue = serializers.SerializerMethodField(
        help_text='While waiting_on is "queued" (its type\'s concurrency limit is reached): its '
        "place among the missions queued for the same slots, e.g. "
        '{"position": 3, "total": 12}; else null.'
    )

    @extend_schema_field(MissionChildSerializer(many=True))
    def get_children(self, mission: Mission) -> list[dict[str, Any]]:
        return MissionChildSerializer(mission_children(mission=mission), many=True).data

    @extend_schema_field(QueuePlaceSerializer(allow_null=True))
    def get_queue(self, mission: Mission) -> dict[str, int] | None:
        place = mission_queue_place(mission=mission)
        return None if place is None else {"position": place.position, "total": place.total}

    class Meta:
        model = Mission
        fields = [
            "id",
            "type",
            "version",
            "title",
            "status",
            "outcome",
            "summary",
            "input",
            "verdict",
            "error",
            "current_step",
            "step_count",
            "waiting_on",
            "waiting_detail",
            "waiting_since",
            "wake_at",
            "priority",
            "queue",
            "started_by",
            "cancelled_by",
            "idempotency_key",
            "parent",
            "children",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class MissionListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Mission.Status.choices, required=False)
    type = serializers.CharField(max_length=100, required=False)
    parent = serializers.UUIDField(required=False, help_text="Only the missions it started.")
    q = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Search: matches the title, type, requester, an id prefix (8 characters or "
        "more) and the business keys each mission type declares (e.g. an order id, a customer, "
        "an amount), case-insensitive, anywhere in the value.",
    )


class StepSerializer(ModelSerializer):
    duration = serializers.FloatField(
        source="duration_seconds", read_only=True, allow_null=True, help_text="seconds"
    )

    class Meta:
        model = Step
        fields = [
            "name",
            "title",
            "position",
            "kind",
            "status",
            "attempts",
            "result",
            "error",
            "idempotency_key",
            "started_at",
            "finished_at",
            "duration",
        ]
        read_only_fields = fields


class StepListSerializer(serializers.Serializer):
    mission = serializers.UUIDField()
    results = StepSerializer(many=True)


class ObservationSerializer(ModelSerializer):
    seq = serializers.IntegerField(source="id", help_text="Sequence number; pass it as ?after=")
    step = serializers.CharField(source="step_name")
    technical = serializers.BooleanField(
        source="is_technical",
        read_only=True,
        help_text="A technical line (shown on the mission's technical view only), "
        "not a business one.",
    )

    class Meta:
        model = Observation
        fields = ["seq", "step", "kind", "message", "technical", "data", "created_at"]
        read_only_fields = fields


class ObservationQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, default=0, help_text="Last seq already seen."
    )
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)


class ObservationListSerializer(serializers.Serializer):
    mission = serializers.UUIDField()
    results = ObservationSerializer(many=True)
    last_seq = serializers.IntegerField(
        help_text="Pass as ?after= to read on; equals `after` when nothing is new."
    )
    has_more = serializers.BooleanField()


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class EventSerializer(serializers.Serializer):
    event = serializers.CharField(max_length=200, help_text="The event name missions wait for.")
    key = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Correlation key, e.g. an order id.",
    )
    payload = serializers.JSONField(required=False, allow_null=True, default=None)


class EventResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="event.id")
    event = serializers.CharField(source="event.name")
    key = serializers.CharField(source="event.key")
    received_at = serializers.DateTimeField(source="event.received_at")
    created = serializers.BooleanField(help_text="False when an Idempotency-Key repeat.")
    delivered_to = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="Missions woken by it; empty means it is kept for the first that waits.",
    )


class DecisionListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Decision.Status.choices, default="pending")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
    q = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Search: matches the decision's title and number, and its mission by title, "
        "requester, id prefix and declared business keys (e.g. an order id, a customer).",
    )


class DecisionSerializer(ModelSerializer):
    mission = serializers.UUIDField(source="mission_id", read_only=True)
    mission_title = serializers.CharField(source="mission.title", read_only=True)
    role = serializers.CharField(source="role.name", read_only=True)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)
    decided_by = serializers.CharField(source="decided_by_name", read_only=True)
    claimed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Decision
        fields = [
            "id",
            "mission",
            "mission_title",
            "step_name",
            "title",
            "summary",
            "context",
            "options",
            "role",
            "status",
            "outcome",
            "comment",
            "created_at",
            "due_at",
            "overdue",
            "decided_by",
            "decided_at",
            "claimed_by",
            "claimed_at",
        ]
        read_only_fields = fields


class DecideSerializer(serializers.Serializer):
    outcome = serializers.CharField(
        max_length=50, help_text='One of the decision\'s options: "approved" or "rejected".'
    )
    comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
