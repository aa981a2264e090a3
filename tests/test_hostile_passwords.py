"""Weak passwords are refused wherever one is set: Django's password forms, and the seeding
of the demo users (which explains the refusal instead of seeding a weak password)."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "weak, why",
    [
        ("password", "too common"),
        ("12345678", "too short"),
        ("1234567890", "entirely numeric"),
        ("supervisor", "too similar to the username"),
        ("short-pw1", "too short"),
    ],
)
def test_a_weak_password_is_refused(supervisor, weak, why):
    form = SetPasswordForm(supervisor, {"new_password1": weak, "new_password2": weak})
    assert not form.is_valid()
    assert why in " ".join(form.errors["new_password2"])


def test_the_admin_refuses_to_create_a_user_with_a_common_password(admin_user):
    client = logged_in(admin_user)
    response = client.post(
        "/admin/auth/user/add/",
        {"username": "newbie", "password1": "password", "password2": "password"},
    )
    assert response.status_code == 200
    assert "This password is too common" in response.text
    assert not User.objects.filter(username="newbie").exists()


def test_seeding_refuses_a_weak_demo_password_and_accepts_the_generated_one(db, tmp_path):
    with (
        override_settings(STUDIOX_DEMO_PASSWORD="password"),
        pytest.raises(CommandError, match=r"The demo password is too weak: .*too common"),
    ):
        call_command("seed", verbosity=0)
    assert not User.objects.exists()

    with override_settings(STUDIOX_DEMO_PASSWORD="", VAR_DIR=tmp_path):
        call_command("seed", verbosity=0)
    generated = (tmp_path / "demo-password").read_text().strip()
    assert authenticate(username="admin", password=generated)
