from django.conf import settings

from studiox import health


def test_it_reports_every_dependency_healthy(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["backend"] == ("postgresql" if settings.IS_POSTGRES else "sqlite")
    expected_broker = "redis" if settings.BROKER_URL.startswith("redis") else "filesystem"
    assert body["broker"]["backend"] == expected_broker
    expected_layer = (
        "RedisChannelLayer" if "redis" in settings.CHANNEL_LAYER_URL else "InMemoryChannelLayer"
    )
    assert body["channel_layer"]["backend"] == expected_layer


def test_it_answers_503_naming_the_failing_dependency(client, db, monkeypatch):
    def broken():
        raise ConnectionError("broker unreachable")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == {
        "status": "error",
        "error": "ConnectionError: broker unreachable",
    }


def test_home_and_login_pages_render_without_external_assets(client, db):
    for url in ("/", "/accounts/login/"):
        html = client.get(url).content.decode()
        assert "StudioX" in html
        assert "https://" not in html and "http://" not in html.replace("http://testserver", "")
