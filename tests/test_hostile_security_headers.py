"""Content-Security-Policy on every page, pages that need nothing it forbids, and HTTPS."""

import json
import re
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from decisions.models import Decision
from missions.services import mission_start
from tests.support.engine import drain, started
from tests.support.pages import logged_in

pytestmark = pytest.mark.django_db

CSP = "Content-Security-Policy"
# Scripts of these types are data for a script to read, which browsers never run.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


class InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' would block: inline scripts, <style>
    elements, style="" attributes, on*="" event handlers and javascript: links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        is_code = attributes.get("type") not in DATA_SCRIPT_TYPES
        if tag == "script" and "src" not in attributes and is_code:
            self.found.append(f"inline <script {attrs}>")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            is_script_link = (value or "").strip().lower().startswith("javascript:")
            if name == "style" or name.startswith("on") or is_script_link:
                self.found.append(f'<{tag} {name}="{value}">')


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def directives(response) -> dict[str, list[str]]:
    policy = response[CSP]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


@pytest.fixture
def decision(requester) -> Decision:
    mission = drain(
        mission_start(type="test_approval", input={"amount": "80"}, started_by=requester).mission
    )
    return Decision.objects.get(mission=mission)


def app_pages(requester, decision) -> list[str]:
    mission = drain(started(requester, steps=3))
    return [
        "/",
        reverse("missions:list"),
        reverse("missions:detail", args=[mission.id]),
        reverse("missions:detail", args=[mission.id]) + "?partial=live",
        reverse("observations:rail"),
        reverse("decisions:queue"),
        reverse("decisions:detail", args=[decision.id]),
        reverse("refund_new"),
    ]


def admin_pages() -> list[str]:
    """The admin's index and own views, and every registered model's list, add form and
    first object."""
    pages = [reverse("admin:index"), reverse("admin:knowledge_document_import")]
    for model in apps.get_models(include_auto_created=True):
        if not admin.site.is_registered(model):
            continue
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages += [reverse(f"{name}_changelist"), reverse(f"{name}_add")]
        first = model._default_manager.first()
        if first is not None:
            pages.append(reverse(f"{name}_change", args=[first.pk]))
    return pages


def test_every_page_gets_a_policy_without_inline_code_or_eval():
    response = Client().get(reverse("login"))
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert "unsafe" not in response[CSP]


def test_the_pages_need_no_inline_script_or_style(admin_user, requester, decision):
    anonymous = Client().get(reverse("login"))
    assert inline_code(anonymous.text) == []
    client = logged_in(admin_user)
    for url in app_pages(requester, decision) + admin_pages():
        response = client.get(url)
        assert response.status_code in (200, 403), url  # 403: a model nobody adds by hand
        assert CSP in response, url
        assert inline_code(response.text) == [], url


def test_the_timeline_gives_bar_positions_as_data(requester):
    mission = drain(started(requester, steps=2))
    text = logged_in(requester).get(reverse("missions:detail", args=[mission.id])).text
    bars = re.findall(
        r'class="gantt-bar[^"]*" data-bar-left="[\d.]+" data-bar-width="[\d.]+"', text
    )
    assert len(bars) == 2
    assert "missions/timeline.js" in text


def test_htmx_may_not_eval_nor_inject_styles(requester):
    text = logged_in(requester).get("/").text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", text)
    assert json.loads(config.group(1)) == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
    }


def test_the_api_docs_allow_their_one_script_by_nonce(requester):
    response = logged_in(requester).get("/api/docs/")
    assert response.status_code == 200
    nonces = [v for v in directives(response)["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1
    nonce = nonces[0].removeprefix("'nonce-").removesuffix("'")
    assert f'<script nonce="{nonce}">' in response.text
    assert [found for found in inline_code(response.text) if nonce not in found] == []


def test_a_nonce_is_never_offered_where_no_script_uses_it(requester):
    response = logged_in(requester).get("/")
    assert "nonce-" not in response[CSP]


def test_plain_http_is_redirected_to_https_except_the_health_check(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 301
    assert page["Location"] == "https://testserver/accounts/login/"
    assert client.get("/healthz").status_code in (200, 503)
