"""Model serializers copy fields bound once per class (studiox.api.serializers): each answer
still gets fields of its own, pointing at its own serializer, and says what DRF would say."""

import threading

import pytest
from rest_framework import serializers

from missions.models import Mission
from studiox.api.serializers import MissionSerializer, ModelSerializer
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


class DrfMissionSerializer(serializers.ModelSerializer):
    """The same fields, as DRF builds them for every instance."""

    class Meta(MissionSerializer.Meta):
        pass

    started_by = MissionSerializer._declared_fields["started_by"]
    cancelled_by = MissionSerializer._declared_fields["cancelled_by"]
    parent = MissionSerializer._declared_fields["parent"]
    children = serializers.SerializerMethodField()
    queue = serializers.SerializerMethodField()
    get_children = MissionSerializer.get_children
    get_queue = MissionSerializer.get_queue


def test_an_answer_is_what_drf_s_own_fields_give(requester):
    mission = drain(started(requester, steps=2))
    assert MissionSerializer(mission).data == DrfMissionSerializer(mission).data
    assert MissionSerializer(mission).data["started_by"] == "requester"


def test_each_serializer_has_fields_of_its_own_bound_to_itself():
    first, second = MissionSerializer(), MissionSerializer()
    for name in ("id", "children", "started_by"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first
        assert second.fields[name].parent is second
        assert first.fields[name].field_name == name


class Tagged(ModelSerializer):
    """A method field that reads its serializer's context, and a field holding a child."""

    whose = serializers.SerializerMethodField()
    tags = serializers.ListField(child=serializers.CharField(), source="input.tags")

    def get_whose(self, mission: Mission) -> str:
        return self.context["who"]

    class Meta:
        model = Mission
        fields = ["id", "whose", "tags"]
        read_only_fields = fields


def test_method_fields_read_their_own_serializer_s_context_in_every_thread():
    mission = Mission(type="test_count", version=1, input={"tags": ["a", "b"]})
    answers: dict[str, dict] = {}

    def answer(who: str) -> None:
        for _ in range(50):
            answers[who] = Tagged(mission, context={"who": who}).data

    threads = [threading.Thread(target=answer, args=(who,)) for who in ("ann", "bob", "cy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for who in ("ann", "bob", "cy"):
        assert answers[who]["whose"] == who
        assert answers[who]["tags"] == ["a", "b"]
    holder = Tagged(mission)
    assert holder.fields["tags"].child.parent is holder.fields["tags"]
