"""OpenAPI at /api/schema/ and docs at /api/docs/, served without any CDN (docs/api.md)."""

import re

import pytest
from django.test import Client

from missions.selectors import mission_types
from tests.support.api import fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


def schema() -> dict:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_describes_every_endpoint():
    paths = schema()["paths"]
    for path, method in [
        ("/api/mission-types/", "get"),
        ("/api/missions/", "get"),
        ("/api/missions/", "post"),
        ("/api/missions/{mission_id}/", "get"),
        ("/api/missions/{mission_id}/steps/", "get"),
        ("/api/missions/{mission_id}/observations/", "get"),
        ("/api/missions/{mission_id}/cancel/", "post"),
        ("/api/missions/{mission_id}/retry/", "post"),
        ("/api/events/", "post"),
        ("/api/decisions/", "get"),
        ("/api/decisions/{decision_id}/decide/", "post"),
    ]:
        assert method in paths[path], (path, method)
    start = paths["/api/missions/"]["post"]
    assert {"201", "200", "400", "409", "413"} <= set(start["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in start["parameters"])


def test_each_mission_types_input_schema_is_published():
    document = schema()
    assert document["openapi"].startswith("3.1")
    components = document["components"]["schemas"]
    for definition in mission_types():
        published = components[f"MissionInput_{definition.name}"]
        expected = definition.input_schema()
        assert published["properties"] == expected.get("properties"), definition.name
    start = components["MissionStart"]["properties"]
    refs = {choice["$ref"] for choice in start["input"]["anyOf"]}
    assert "#/components/schemas/MissionInput_test_refuse" in refs
    assert "test_count" in start["type"]["enum"]


def test_the_docs_page_loads_its_assets_from_this_server():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in asset for asset in assets)
    assert all(not asset.startswith(("http://", "https://", "//")) for asset in assets), assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert Client().get(asset).status_code == 200, asset
