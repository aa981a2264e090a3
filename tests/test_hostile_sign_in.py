"""Password and token guessing is slowed down: per account and per address on the sign-in
pages (the app's and the admin's), per address for API tokens."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.conftest import make_user
from tests.support.api import fresh_throttles, token_for  # noqa: F401

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
FEW = {
    "STUDIOX_LOGIN_FAILURE_LIMIT": 3,
    "STUDIOX_LOGIN_ADDRESS_FAILURE_LIMIT": 5,
    "STUDIOX_TOKEN_FAILURE_LIMIT": 3,
    "STUDIOX_LOGIN_COOLOFF_MINUTES": 15,
}


def sign_in(client: Client, username: str, password: str, url: str = LOGIN, address="10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@override_settings(**FEW)
def test_wrong_passwords_lock_the_account_even_for_the_right_one(supervisor):
    client = Client()
    answers = [sign_in(client, "supervisor", f"guess-{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]

    right = sign_in(client, "Supervisor ", "pw-supervisor")  # the same account, spelled loosely

    assert right.status_code == 429
    assert int(right["Retry-After"]) > 14 * 60
    assert "Too many failed sign-ins for this account; try again in 15 minutes" in right.text
    assert not signed_in(client)


@override_settings(**FEW)
def test_a_locked_account_does_not_lock_out_colleagues_at_the_same_address(supervisor, requester):
    for n in range(3):
        sign_in(Client(), "supervisor", f"guess-{n}")
    assert sign_in(Client(), "supervisor", "pw-supervisor").status_code == 429
    colleague = Client()
    assert sign_in(colleague, "requester", "pw-requester").status_code == 302
    assert signed_in(colleague)


@override_settings(**FEW)
def test_a_successful_sign_in_forgets_the_accounts_earlier_typos(supervisor):
    for _ in range(2):
        for n in range(2):
            sign_in(Client(), "supervisor", f"typo-{n}", address=f"10.0.1.{n}")
        assert sign_in(Client(), "supervisor", "pw-supervisor").status_code == 302
    # Three typos in a row are still too many.
    statuses = [sign_in(Client(), "supervisor", "typo").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@override_settings(**FEW)
def test_guessing_across_accounts_locks_the_address_only(requester):
    for n in range(5):
        sign_in(Client(), f"user-{n}", "password1", address="10.9.9.9")

    refused = sign_in(Client(), "requester", "pw-requester", address="10.9.9.9")
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address" in refused.text

    elsewhere = Client()
    assert sign_in(elsewhere, "requester", "pw-requester", address="10.0.0.2").status_code == 302
    assert signed_in(elsewhere)


@override_settings(**FEW)
def test_the_admin_sign_in_counts_failures_too(admin_user):
    client = Client()
    for n in range(3):
        sign_in(client, "admin", f"guess-{n}", url=ADMIN_LOGIN)

    right = sign_in(client, "admin", "pw-admin", url=ADMIN_LOGIN)

    assert "Too many failed sign-ins for this account" in right.text
    assert not signed_in(client)
    # The app's page shares the count: the account is locked there as well.
    assert sign_in(Client(), "admin", "pw-admin").status_code == 429


@override_settings(**FEW)
def test_invalid_api_tokens_from_one_address_get_429(requester):
    guesser = APIClient(REMOTE_ADDR="10.6.6.6")
    statuses = []
    for n in range(3):
        guesser.credentials(HTTP_AUTHORIZATION=f"Token not-a-key-{n}")
        statuses.append(guesser.get("/api/missions/").status_code)
    assert statuses == [401, 401, 429]

    guesser.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(requester)}")
    refused = guesser.get("/api/missions/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 14 * 60
    body = refused.json()
    assert body["detail"].startswith("Too many requests with an invalid API token")
    assert body["errors"] == {}

    elsewhere = APIClient(REMOTE_ADDR="10.0.0.3")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Token {token_for(requester)}")
    assert elsewhere.get("/api/missions/").status_code == 200


def test_the_default_limits_stop_twenty_quick_guesses(db):
    make_user("victim")
    client = Client()
    for n in range(20):
        sign_in(client, "victim", f"guess-{n}")
    assert sign_in(client, "victim", "pw-victim").status_code == 429
    assert not signed_in(client)


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_a_limit_that_would_not_limit_stops_start_up(value, tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STUDIOX_")}
    environment.update(
        DJANGO_SETTINGS_MODULE="studiox.settings",
        STUDIOX_DEBUG="true",
        STUDIOX_VAR_DIR=str(tmp_path),
        STUDIOX_LOGIN_FAILURE_LIMIT=value,
    )
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=environment,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    )
    assert started.returncode != 0
    assert "STUDIOX_LOGIN_FAILURE_LIMIT" in started.stderr


def test_the_log_in_link_never_sends_you_back_to_the_log_in_page(db):
    page = Client().get("/accounts/login/").text
    assert 'href="/accounts/login/">Log in</a>' in page
    assert "next=/accounts/login/" not in page and "next=%2Faccounts%2Flogin%2F" not in page
    assert 'href="/accounts/login/?next=/">Log in</a>' in Client().get("/").text
