"""The missions endpoints of the REST API (docs/api.md): happy paths and each refusal."""

import pytest

from missions.models import Mission
from tests.support.api import api_client, failed, fresh_throttles  # noqa: F401
from tests.support.engine import drain, started

pytestmark = pytest.mark.django_db


def test_it_lists_mission_types_with_their_input_schema(requester):
    response = api_client(requester).get("/api/mission-types/")
    assert response.status_code == 200
    types = {item["name"]: item for item in response.json()}
    count = types["test_count"]
    assert (count["version"], count["title"]) == (1, "Counting")
    assert count["input_schema"]["properties"]["steps"]["type"] == "integer"
    assert count["input_schema"]["required"] == ["steps"]


def test_it_starts_a_mission(requester):
    response = api_client(requester).post(
        "/api/missions/", {"type": "test_count", "input": {"steps": 2}}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    mission = Mission.objects.get(id=body["id"])
    assert (body["type"], body["version"], body["status"]) == ("test_count", 1, "pending")
    assert body["input"] == {"steps": 2, "marker": ""}
    assert body["started_by"] == "requester"
    assert mission.started_by == requester
    assert response["Location"].endswith(f"/api/missions/{mission.id}/")


def test_it_refuses_an_unknown_type_naming_the_field(requester):
    response = api_client(requester).post(
        "/api/missions/", {"type": "nope", "input": {}}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert "nope" in body["detail"]
    assert body["errors"]["type"] == ["unknown mission type 'nope'"]
    assert not Mission.objects.exists()


def test_it_refuses_invalid_input_with_field_errors_under_input(requester):
    response = api_client(requester).post(
        "/api/missions/",
        {"type": "test_refuse", "input": {"order_id": "A-1", "amount": "-5"}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"input"}
    assert set(body["errors"]["input"]) == {"amount"}
    assert "amount" in body["detail"]
    assert not Mission.objects.exists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"input": {"steps": 1}}, "type"),
        ({"type": "test_count", "input": [1, 2]}, "input"),
        ({"type": "test_count", "input": "steps=1"}, "input"),
    ],
)
def test_it_refuses_a_malformed_start_request(requester, payload, field):
    response = api_client(requester).post("/api/missions/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_lists_visible_missions_newest_first(requester, outsider):
    first = started(requester)
    second = started(requester, "test_sleep", seconds=1)
    started(outsider)
    response = api_client(requester).get("/api/missions/")
    assert response.status_code == 200
    body = response.json()
    assert [m["id"] for m in body["results"]] == [str(second.id), str(first.id)]
    assert body["next"] is None


def test_it_filters_the_list_by_status_and_type(requester):
    done = drain(started(requester))
    pending = started(requester, "test_sleep", seconds=1)
    client = api_client(requester)
    by_status = client.get("/api/missions/", {"status": "succeeded"}).json()["results"]
    assert [m["id"] for m in by_status] == [str(done.id)]
    by_type = client.get("/api/missions/", {"type": "test_sleep"}).json()["results"]
    assert [m["id"] for m in by_type] == [str(pending.id)]


def test_it_pages_the_list_with_a_cursor(requester):
    ids = [str(started(requester).id) for _ in range(5)]
    client = api_client(requester)
    seen = []
    url = "/api/missions/?page_size=2"
    while url:
        body = client.get(url).json()
        seen.extend(m["id"] for m in body["results"])
        url = body["next"]
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    "query",
    [{"status": "sleeping"}, {"cursor": "bz14"}, {"cursor": "cD1ub3BlJnI9MA=="}],
)
def test_it_refuses_a_bad_list_query(requester, query):
    response = api_client(requester).get("/api/missions/", query)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(query)


def test_it_shows_where_a_mission_stands(requester):
    mission = drain(started(requester, "test_event", key="order-7"))
    body = api_client(requester).get(f"/api/missions/{mission.id}/").json()
    assert body["status"] == "waiting"
    assert body["current_step"] == "shipment"
    assert body["waiting_on"] == "event"
    assert body["waiting_since"] is not None
    assert body["verdict"] is None
    assert body["started_by"] == "requester"


def test_it_shows_the_verdict_and_error_of_finished_missions(requester):
    done = drain(started(requester))
    broken = failed(requester)
    client = api_client(requester)
    assert client.get(f"/api/missions/{done.id}/").json()["verdict"] == {
        "outcome": "counted",
        "total": 1,
    }
    assert "exceeds the limit" in client.get(f"/api/missions/{broken.id}/").json()["error"]


@pytest.mark.parametrize(
    "mission_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "1234"]
)
def test_it_answers_404_for_unknown_ids(requester, mission_id):
    for suffix in ("", "steps/", "observations/"):
        response = api_client(requester).get(f"/api/missions/{mission_id}/{suffix}")
        assert response.status_code == 404
        assert mission_id in response.json()["detail"]


def test_it_answers_404_for_a_mission_of_someone_else(requester, outsider):
    mission = started(requester)
    response = api_client(outsider).get(f"/api/missions/{mission.id}/")
    assert response.status_code == 404


def test_it_lists_the_checkpoints(requester):
    mission = drain(started(requester, steps=2))
    body = api_client(requester).get(f"/api/missions/{mission.id}/steps/").json()
    steps = body["results"]
    assert [(s["name"], s["position"], s["status"]) for s in steps] == [
        ("n:0", 0, "completed"),
        ("n:1", 1, "completed"),
    ]
    first = steps[0]
    assert (first["kind"], first["attempts"], first["result"], first["error"]) == (
        "step",
        1,
        1,
        "",
    )
    assert first["idempotency_key"]
    assert first["started_at"] and first["finished_at"]
    assert first["duration"] >= 0


def test_it_reads_the_rail_from_a_sequence_number(requester):
    mission = drain(started(requester, steps=2))
    client = api_client(requester)
    url = f"/api/missions/{mission.id}/observations/"
    everything = client.get(url).json()
    seqs = [o["seq"] for o in everything["results"]]
    assert len(seqs) >= 3 and seqs == sorted(seqs)
    assert everything["results"][-1]["kind"] == "verdict"
    assert everything["last_seq"] == seqs[-1] and not everything["has_more"]
    rest = client.get(url, {"after": seqs[0]}).json()
    assert [o["seq"] for o in rest["results"]] == seqs[1:]
    page = client.get(url, {"after": 0, "limit": 1}).json()
    assert ([o["seq"] for o in page["results"]], page["has_more"]) == ([seqs[0]], True)
    nothing_new = client.get(url, {"after": seqs[-1]}).json()
    assert (nothing_new["results"], nothing_new["last_seq"]) == ([], seqs[-1])


@pytest.mark.parametrize("after", ["x", "-1", "1.5"])
def test_it_refuses_a_bad_after(requester, after):
    mission = started(requester)
    response = api_client(requester).get(
        f"/api/missions/{mission.id}/observations/", {"after": after}
    )
    assert response.status_code == 400
    assert "after" in response.json()["errors"]


@pytest.mark.parametrize("persona", ["requester", "admin_user"])
def test_a_list_page_costs_the_same_queries_for_2_or_20_missions(persona, request):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = request.getfixturevalue(persona)
    client = api_client(user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/missions/").status_code == 200
        return len(captured)

    for _ in range(2):
        started(user)
    few = queries()
    for _ in range(18):
        started(user)
    assert queries() == few
