"""MCP servers in the admin: the list, the live tool listing, and validation."""

import json
import sys

import pytest
from django.urls import reverse

from missions.mcp_models import McpServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_row(tmp_path) -> McpServer:
    return McpServer.objects.create(
        name="payments",
        transport="stdio",
        command=[sys.executable, "-m", "demo_payments"],
        env={"DEMO_PAYMENTS_LEDGER": str(tmp_path / "ledger.sqlite3")},
    )


def test_the_list_shows_each_servers_endpoint(admin_client, demo_row):
    text = admin_client.get(reverse("admin:missions_mcpserver_changelist"), {"q": "pay"}).text

    assert "-m demo_payments" in text


def test_the_change_page_lists_the_servers_tools(admin_client, demo_row):
    page = admin_client.get(reverse("admin:missions_mcpserver_change", args=[demo_row.pk])).text

    assert "<code>issue_refund</code>" in page
    assert "<code>lookup_refunds</code>" in page


def test_the_change_page_says_why_the_tools_could_not_be_listed(admin_client, tmp_path):
    row = McpServer.objects.create(
        name="ghost", transport="stdio", command=[str(tmp_path / "no-such-server")]
    )

    page = admin_client.get(reverse("admin:missions_mcpserver_change", args=[row.pk])).text

    assert "Could not list the tools" in page
    assert "could not be started" in page


def test_a_stdio_server_without_a_command_is_not_saved(admin_client):
    response = admin_client.post(
        reverse("admin:missions_mcpserver_add"),
        {
            "name": "broken",
            "transport": "stdio",
            "command": "[]",
            "env": "{}",
            "url": "",
            "timeout_seconds": "30",
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert "stdio needs a command" in response.text
    assert not McpServer.objects.filter(name="broken").exists()


def test_an_http_server_with_a_url_is_saved(admin_client):
    response = admin_client.post(
        reverse("admin:missions_mcpserver_add"),
        {
            "name": "remote",
            "transport": "http",
            "command": "[]",
            "env": "{}",
            "url": "http://127.0.0.1:9/mcp",
            "timeout_seconds": "5",
            "enabled": "on",
        },
    )

    assert response.status_code == 302, response.text
    row = McpServer.objects.get(name="remote")
    assert (row.url, row.timeout_seconds, json.dumps(row.command)) == (
        "http://127.0.0.1:9/mcp",
        5.0,
        "[]",
    )
