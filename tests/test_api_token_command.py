"""manage.py create_api_token: prints a user's token, the same one until --reset."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_the_same_token_until_reset(requester):
    first = run("requester")
    assert first == Token.objects.get(user=requester).key
    assert run("requester") == first
    rotated = run("requester", "--reset")
    assert rotated != first
    assert Token.objects.filter(user=requester).values_list("key", flat=True).get() == rotated


def test_the_printed_token_authenticates_api_calls(requester):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {run('requester')}")
    assert client.get("/api/mission-types/").status_code == 200


def test_it_refuses_an_unknown_or_inactive_user(requester):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("ghost")
    requester.is_active = False
    requester.save()
    with pytest.raises(CommandError, match="inactive"):
        run("requester")
    assert not Token.objects.exists()
