"""The LLM settings are read from the environment and fail loudly when wrong."""

import os
import subprocess
import sys

PROBE = (
    "import django, json; from django.conf import settings; django.setup();"
    "print(json.dumps({'provider': settings.STUDIOX_LLM_PROVIDER,"
    " 'model': settings.STUDIOX_LLM_MODEL, 'timeout': settings.STUDIOX_LLM_TIMEOUT_SECONDS,"
    " 'threshold': str(settings.STUDIOX_FINANCE_THRESHOLD)}))"
)


def probe(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIOX_", "DATABASE_"))}
    clean.update(
        DJANGO_SETTINGS_MODULE="studiox.settings",
        STUDIOX_SECRET_KEY="k",
        STUDIOX_VAR_DIR=str(tmp_path),
        **env,
    )
    return subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True)


def test_the_default_is_offline_with_a_500_eur_finance_threshold(tmp_path):
    import json

    result = probe(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "provider": "offline",
        "model": "",
        "timeout": 60.0,
        "threshold": "500.00",
    }


def test_it_reads_a_configured_provider(tmp_path):
    import json

    result = probe(
        tmp_path,
        STUDIOX_LLM_PROVIDER="openai",
        STUDIOX_LLM_MODEL="qwen2.5",
        STUDIOX_LLM_TIMEOUT_SECONDS="12.5",
        STUDIOX_FINANCE_THRESHOLD="1000",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "provider": "openai",
        "model": "qwen2.5",
        "timeout": 12.5,
        "threshold": "1000",
    }


def test_it_refuses_an_unknown_provider(tmp_path):
    result = probe(tmp_path, STUDIOX_LLM_PROVIDER="openia")
    assert result.returncode != 0
    assert "STUDIOX_LLM_PROVIDER=openia" in result.stderr


def test_it_refuses_a_hosted_provider_without_a_model(tmp_path):
    result = probe(tmp_path, STUDIOX_LLM_PROVIDER="anthropic")
    assert result.returncode != 0
    assert "STUDIOX_LLM_MODEL is required with anthropic" in result.stderr


def test_it_refuses_a_finance_threshold_that_is_not_an_amount(tmp_path):
    result = probe(tmp_path, STUDIOX_FINANCE_THRESHOLD="five hundred")
    assert result.returncode != 0
    assert "STUDIOX_FINANCE_THRESHOLD" in result.stderr
