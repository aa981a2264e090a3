import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from studiox.env import env_bool, env_int, env_list, env_proxy_ssl_header

SETTINGS_PROBE = (
    "import json; from django.conf import settings;"
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'],"
    " 'name': str(settings.DATABASES['default']['NAME']), 'broker': settings.BROKER_URL,"
    " 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'debug': settings.DEBUG,"
    " 'cache': settings.CACHES['default']['BACKEND'],"
    " 'hosts': settings.ALLOWED_HOSTS, 'modules': settings.STUDIOX_MISSION_MODULES}))"
)


PROJECT_DIR = Path(__file__).resolve().parent.parent


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Python in the project with only `env` of the settings' variables: what a fresh
    deployment with that environment would see."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIOX_", "DATABASE_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "studiox.settings", **env})
    return subprocess.run(
        [sys.executable, *args], env=clean, capture_output=True, text=True, cwd=PROJECT_DIR
    )


def probe_settings(**env: str) -> subprocess.CompletedProcess:
    return run_python("-c", SETTINGS_PROBE, **env)


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


def test_manage_py_in_a_new_terminal_uses_the_key_bin_studiox_created(tmp_path):
    (tmp_path / "secret-key").write_text("key-from-bin-studiox\n")
    result = run_python(
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        STUDIOX_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "key-from-bin-studiox"
    from_environment = run_python(
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_SECRET_KEY="from-the-environment",
    )
    assert from_environment.stdout.strip() == "from-the-environment"


def test_the_embedded_default_needs_no_service(tmp_path):
    import json

    result = probe_settings(STUDIOX_SECRET_KEY="k", STUDIOX_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "studiox.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["debug"] is False


def test_production_urls_are_parsed(tmp_path):
    import json

    result = probe_settings(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://app:pw@db.internal:5433/studiox",
        STUDIOX_BROKER_URL="redis://cache:6379/1",
        STUDIOX_CHANNEL_LAYER_URL="redis://cache:6379/2",
        STUDIOX_CACHE_URL="redis://cache:6379/3",
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
    assert values["cache"] == "studiox.cache.SharedClientRedisCache"
    assert values["hosts"] == ["studiox.example.com", "api.example.com"]
    assert values["modules"] == ["acme.missions", "acme.more"]
    assert values["debug"] is True


def test_it_rejects_an_unknown_cache(tmp_path):
    result = probe_settings(
        STUDIOX_SECRET_KEY="k", STUDIOX_VAR_DIR=str(tmp_path), STUDIOX_CACHE_URL="memcached://x"
    )
    assert result.returncode != 0
    assert "STUDIOX_CACHE_URL=memcached://x" in result.stderr


def test_it_rejects_an_unknown_channel_layer(tmp_path):
    result = probe_settings(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_CHANNEL_LAYER_URL="carrier-pigeon://",
    )
    assert result.returncode != 0
    assert "STUDIOX_CHANNEL_LAYER_URL=carrier-pigeon://" in result.stderr


PRODUCTION = {
    "STUDIOX_SECRET_KEY": "k3y-" + "a1b2c3d4e5" * 6,
    "STUDIOX_ALLOWED_HOSTS": "studiox.example.com",
    "STUDIOX_DEBUG": "False",
}


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return run_python("manage.py", "check", "--deploy", STUDIOX_VAR_DIR=str(tmp_path), **env)


def test_check_deploy_is_clean_with_https_on(tmp_path):
    result = check_deploy(tmp_path, STUDIOX_HTTPS="true", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stderr


def test_check_deploy_warns_without_https(tmp_path):
    result = check_deploy(tmp_path, **PRODUCTION)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_https_is_off_on_the_embedded_default(tmp_path):
    result = probe_security(STUDIOX_SECRET_KEY="k", STUDIOX_VAR_DIR=str(tmp_path))
    assert result == {
        "redirect": False,
        "session_secure": False,
        "csrf_secure": False,
        "hsts": 0,
        "subdomains": False,
        "preload": False,
        "proxy": None,
    }


def test_https_turns_on_the_safe_set(tmp_path):
    result = probe_security(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_HTTPS="true",
        STUDIOX_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert result == {
        "redirect": True,
        "session_secure": True,
        "csrf_secure": True,
        "hsts": 31_536_000,
        "subdomains": True,
        "preload": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_hsts_can_be_tuned_under_https(tmp_path):
    result = probe_security(
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_HTTPS="true",
        STUDIOX_HSTS_SECONDS="3600",
        STUDIOX_HSTS_INCLUDE_SUBDOMAINS="false",
        STUDIOX_HSTS_PRELOAD="false",
    )
    assert (result["hsts"], result["subdomains"], result["preload"]) == (3600, False, False)


def test_env_proxy_ssl_header_maps_a_header_name(monkeypatch):
    monkeypatch.setenv("X_PROXY", " X-Forwarded-Proto ")
    assert env_proxy_ssl_header("X_PROXY") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("X_PROXY", "")
    assert env_proxy_ssl_header("X_PROXY") is None


@pytest.mark.parametrize("value", ["X_Forwarded_Proto", "X-Forwarded-Proto: https", "-X", "Ä"])
def test_env_proxy_ssl_header_rejects_what_is_no_header_name(monkeypatch, value):
    monkeypatch.setenv("X_PROXY", value)
    with pytest.raises(ImproperlyConfigured, match="X_PROXY="):
        env_proxy_ssl_header("X_PROXY")


SECURITY_PROBE = (
    "import json; from django.conf import settings as s;"
    "print(json.dumps({'redirect': s.SECURE_SSL_REDIRECT, 'session_secure':"
    " s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts':"
    " s.SECURE_HSTS_SECONDS, 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload':"
    " s.SECURE_HSTS_PRELOAD, 'proxy': s.SECURE_PROXY_SSL_HEADER}))"
)


def probe_security(**env: str) -> dict:
    import json

    result = run_python("-c", SECURITY_PROBE, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
