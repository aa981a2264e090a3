import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from studiox.env import env_bool, env_int, env_list

SETTINGS_PROBE = (
    "import json; from django.conf import settings;"
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'],"
    " 'name': str(settings.DATABASES['default']['NAME']), 'broker': settings.BROKER_URL,"
    " 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'debug': settings.DEBUG,"
    " 'hosts': settings.ALLOWED_HOSTS, 'modules': settings.STUDIOX_MISSION_MODULES}))"
)


def probe_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIOX_", "DATABASE_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "studiox.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE], env=clean, capture_output=True, text=True
    )


def test_env_bool_accepts_true_and_false(monkeypatch):
    monkeypatch.setenv("X_FLAG", "True")
    assert env_bool("X_FLAG") is True
    monkeypatch.setenv("X_FLAG", "False")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_env_bool_rejects_other_values_loudly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes please")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG=yes please"):
        env_bool("X_FLAG")


def test_env_int_rejects_non_numbers(monkeypatch):
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM=ten"):
        env_int("X_NUM", 1)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("X_LIST", " a.b , c ,,")
    assert env_list("X_LIST") == ["a.b", "c"]


def test_it_requires_a_secret_key_when_debug_is_off(tmp_path):
    result = probe_settings(STUDIOX_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "STUDIOX_SECRET_KEY is required" in result.stderr


def test_the_embedded_default_needs_no_service(tmp_path):
    import json

    result = probe_settings(STUDIOX_SECRET_KEY="k", STUDIOX_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "studiox.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["debug"] is False


def test_production_urls_are_parsed(tmp_path):
    import json

    result = probe_settings(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://app:pw@db.internal:5433/studiox",
        STUDIOX_BROKER_URL="redis://cache:6379/1",
        STUDIOX_CHANNEL_LAYER_URL="redis://cache:6379/2",
        STUDIOX_ALLOWED_HOSTS="studiox.example.com, api.example.com",
        STUDIOX_MISSION_MODULES="acme.missions, acme.more",
        STUDIOX_DEBUG="True",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "studiox"
    assert values["broker"] == "redis://cache:6379/1"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["hosts"] == ["studiox.example.com", "api.example.com"]
    assert values["modules"] == ["acme.missions", "acme.more"]
    assert values["debug"] is True


def test_it_rejects_an_unknown_channel_layer(tmp_path):
    result = probe_settings(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_CHANNEL_LAYER_URL="carrier-pigeon://",
    )
    assert result.returncode != 0
    assert "STUDIOX_CHANNEL_LAYER_URL=carrier-pigeon://" in result.stderr
