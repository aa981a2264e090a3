"""OpenAPI 3.1 for the API, with every mission type's input JSON Schema as a component.

OpenAPI 3.1 schemas are JSON Schema 2020-12, the dialect pydantic writes, so a mission's input
model is published exactly as `mission_start` validates it.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView

from missions.runtime import MissionDefinition
from missions.selectors import mission_types

START_COMPONENT = "MissionStart"


def _component_name(definition: MissionDefinition) -> str:
    return "MissionInput_" + re.sub(r"[^A-Za-z0-9_.-]", "_", definition.name)


def _input_schema(definition: MissionDefinition, name: str) -> tuple[dict, dict]:
    """The input's JSON Schema with its nested models moved to components beside it."""
    if definition.input_model is None:
        return definition.input_schema(), {}
    schema = definition.input_model.model_json_schema(
        ref_template=f"#/components/schemas/{name}_{{model}}"
    )
    nested = {f"{name}_{model}": sub for model, sub in schema.pop("$defs", {}).items()}
    return schema, nested


def add_mission_inputs(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    choices: list[dict[str, str]] = []
    names: list[str] = []
    for definition in mission_types():
        name = _component_name(definition)
        input_schema, nested = _input_schema(definition, name)
        input_schema["description"] = (
            f"Input of mission type '{definition.name}' (version {definition.version}, "
            f"{definition.title})."
        )
        components.update(nested)
        components[name] = input_schema
        choices.append({"$ref": f"#/components/schemas/{name}"})
        names.append(definition.name)
    start = components.get(START_COMPONENT)
    if start and names:
        properties = start.setdefault("properties", {})
        properties["type"] = {**properties.get("type", {}), "enum": names}
        properties["input"] = {
            "anyOf": choices,
            "description": "The input of the chosen type: the MissionInput_<type> component.",
        }
    return schema


class StudioXSchemaGenerator(SchemaGenerator):
    def get_schema(self, request=None, public=False):
        schema = super().get_schema(request=request, public=public)
        return add_mission_inputs(schema)


class StudioXSchemaView(SpectacularAPIView):
    generator_class = StudioXSchemaGenerator
    custom_settings = {"OAS_VERSION": "3.1.0"}
