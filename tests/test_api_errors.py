"""Every API refusal is JSON with a clear message, never an HTML page or a 500."""

import pytest
from django.test import Client

from tests.support.api import api_client, fresh_throttles, token_for  # noqa: F401

pytestmark = pytest.mark.django_db


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/mission-types/"),
        ("get", "/api/missions/"),
        ("post", "/api/missions/"),
        ("get", "/api/missions/00000000-0000-0000-0000-000000000000/"),
        ("post", "/api/events/"),
        ("get", "/api/decisions/"),
    ],
)
def test_it_answers_401_to_anonymous_callers(method, path):
    response = getattr(api_client(None), method)(path, {}, format="json")
    body = assert_json_error(response, 401)
    assert "credentials" in body["detail"]
    assert response["WWW-Authenticate"].startswith("Token")


def test_it_answers_401_to_a_wrong_token():
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert "Invalid token" in assert_json_error(client.get("/api/missions/"), 401)["detail"]


def test_a_deactivated_users_token_is_refused_and_a_revoked_one_at_once(requester):
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(requester)}")
    assert client.get("/api/missions/").json()["results"] == []  # the token works...
    requester.is_active = False
    requester.save(update_fields=["is_active"])
    assert "inactive" in assert_json_error(client.get("/api/missions/"), 401)["detail"]
    requester.is_active = True
    requester.save(update_fields=["is_active"])
    assert client.get("/api/missions/").status_code == 200
    requester.auth_token.delete()  # ...until it is revoked: no copy of it outlives that
    assert "Invalid token" in assert_json_error(client.get("/api/missions/"), 401)["detail"]


def test_a_session_works_and_its_posts_need_the_csrf_token(requester):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(requester)
    assert browser.get("/api/mission-types/").status_code == 200
    refused = browser.post(
        "/api/missions/",
        {"type": "test_count", "input": {"steps": 1}},
        content_type="application/json",
    )
    assert "CSRF" in assert_json_error(refused, 403)["detail"]


def test_malformed_json_is_a_400(requester):
    response = api_client(requester).post(
        "/api/missions/", data='{"type": "test_count", "input": {', content_type="application/json"
    )
    assert "JSON parse error" in assert_json_error(response, 400)["detail"]


def test_a_body_that_is_not_json_is_a_415(requester):
    response = api_client(requester).post(
        "/api/missions/", data="type=test_count", content_type="application/x-www-form-urlencoded"
    )
    assert "Unsupported media type" in assert_json_error(response, 415)["detail"]


def test_an_oversized_body_is_a_413(requester, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = {"type": "test_count", "input": {"steps": 1, "marker": "x" * 2000}}
    response = api_client(requester).post("/api/missions/", big, format="json")
    body = assert_json_error(response, 413)
    assert "limit is 1000 bytes" in body["detail"]


def test_an_oversized_body_is_refused_before_authentication(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = api_client(None).post("/api/events/", {"event": "x" * 50}, format="json")
    assert_json_error(response, 413)


def test_an_unknown_api_url_is_a_json_404(requester):
    body = assert_json_error(api_client(requester).get("/api/nothing-here/"), 404)
    assert "/api/nothing-here/" in body["detail"]


def test_a_wrong_method_is_a_json_405(requester):
    assert_json_error(api_client(requester).delete("/api/missions/"), 405)


def test_a_bad_idempotency_key_is_a_400(requester):
    response = api_client(requester).post(
        "/api/missions/",
        {"type": "test_count", "input": {"steps": 1}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k" * 201,
    )
    assert "Idempotency-Key" in assert_json_error(response, 400)["errors"]


def test_too_many_requests_is_a_429_with_retry_after(requester, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "user": "2/minute"},
    }
    client = api_client(requester)
    assert [client.get("/api/mission-types/").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/mission-types/")
    assert "throttled" in assert_json_error(response, 429)["detail"]
    assert int(response["Retry-After"]) > 0


def test_the_token_may_also_come_as_bearer(requester):
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(requester)}")
    assert client.get("/api/mission-types/").status_code == 200
