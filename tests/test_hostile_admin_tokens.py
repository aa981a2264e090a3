"""The admin names API tokens by a prefix of the key, never by the whole key."""

from importlib import import_module

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token, TokenProxy

from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db


def token_admin_url(view: str, *args) -> str:
    """The URL of a view of whichever admin lists API tokens."""
    (model,) = [
        model
        for model in apps.get_models()
        if issubclass(model, Token) and admin.site.is_registered(model)
    ]
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def key(requester) -> str:
    return Token.objects.create(user=requester).key


@pytest.fixture
def staff(admin_user) -> Client:
    return logged_in(admin_user)


def test_the_list_and_its_search_show_a_prefix_only(staff, key):
    for query in ({}, {"q": "requester"}):
        page = staff.get(token_admin_url("changelist"), query)
        assert page.status_code == 200
        assert key not in page.text
        assert f"{key[:6]}…" in page.text


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_a_token_s_own_pages_show_a_prefix_only(staff, key, requester, view):
    page = staff.get(token_admin_url(view, requester.pk))
    assert page.status_code == 200
    assert key not in page.text
    assert f"{key[:6]}…" in page.text


def test_adding_and_deleting_leave_no_key_in_messages_or_the_admin_log(staff, outsider):
    added = staff.post(token_admin_url("add"), {"user": outsider.pk}, follow=True)
    key = Token.objects.get(user=outsider).key
    deleted = staff.post(token_admin_url("delete", outsider.pk), {"post": "yes"}, follow=True)
    assert not Token.objects.filter(user=outsider).exists()
    index = staff.get(reverse("admin:index"))
    for page in (added, deleted, index):
        assert page.status_code == 200
        assert key not in page.text
    assert LogEntry.objects.count() == 2
    assert not LogEntry.objects.filter(object_repr__contains=key).exists()


def test_the_admin_log_keeps_only_a_prefix_of_keys_it_recorded_before(admin_user, key):
    scrub = import_module("studiox.migrations.0002_admin_log_token_prefixes")
    entry = LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(TokenProxy, for_concrete_model=False),
        object_id="1",
        object_repr=key,
        action_flag=1,
    )
    scrub.keep_key_prefixes(apps, None)
    entry.refresh_from_db()
    assert entry.object_repr == f"{key[:6]}…"
