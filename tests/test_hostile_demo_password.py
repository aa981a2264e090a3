"""manage.py seed shows the demo password to a person at a terminal, never to a log."""

import logging
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PASSWORD = "Qx7-harbour-lantern-92"


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def seed(caplog, stdout: StringIO, **options) -> tuple[str, str]:
    """Run the seed command; its output and every log record it made, as text."""
    with caplog.at_level(logging.DEBUG):
        call_command("seed", stdout=stdout, **options)
    return stdout.getvalue(), "\n".join(record.getMessage() for record in caplog.records)


def test_redirected_output_and_logs_never_carry_the_password(caplog):
    output, logs = seed(caplog, StringIO(), password=PASSWORD)
    assert PASSWORD not in output
    assert PASSWORD not in logs
    assert "Demo password: not shown" in output
    assert "see the --password option" in output


def test_it_says_where_a_password_from_the_environment_comes_from(caplog, settings):
    settings.STUDIOX_DEMO_PASSWORD = PASSWORD
    output, logs = seed(caplog, StringIO())
    assert PASSWORD not in output + logs
    assert "see STUDIOX_DEMO_PASSWORD" in output


def test_it_says_where_a_generated_password_is_kept(caplog, settings, tmp_path):
    settings.STUDIOX_DEMO_PASSWORD = ""
    settings.VAR_DIR = tmp_path
    output, logs = seed(caplog, StringIO())
    generated = Path(tmp_path / "demo-password").read_text().strip()
    assert generated not in output + logs
    assert f"see {tmp_path / 'demo-password'}" in output


def test_a_person_at_a_terminal_sees_the_password(caplog):
    output, logs = seed(caplog, Terminal(), password=PASSWORD)
    assert f"Demo password: {PASSWORD}" in output
    assert PASSWORD not in logs
