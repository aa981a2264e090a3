"""Admin for MCP servers (docs/operating.md: configured in settings or the admin).

Registered through `integrations.admin`, which Django's admin autodiscovery imports. The rows
are listed under Missions, the model's app.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from integrations import mcp_client, ratelimit
from missions.models import McpServer

CONFIG_FIELDS = [
    "name",
    "transport",
    "command",
    "env",
    "url",
    "timeout_seconds",
    "rate_limit",
    "tool_rate_limits",
    "enabled",
]


class McpServerForm(forms.ModelForm):
    url = forms.URLField(
        required=False, assume_scheme="https", help_text="streamable HTTP: the endpoint URL"
    )

    class Meta:
        model = McpServer
        fields = CONFIG_FIELDS

    def clean_rate_limit(self) -> str:
        text = (self.cleaned_data.get("rate_limit") or "").strip()
        if text:
            try:
                ratelimit.parse(text)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
        return text

    def clean_tool_rate_limits(self) -> dict:
        limits = self.cleaned_data.get("tool_rate_limits") or {}
        if not isinstance(limits, dict):
            raise ValidationError('an object of tool -> rate, e.g. {"issue_refund": "10/s"}')
        for tool, text in limits.items():
            try:
                ratelimit.parse(text)
            except ValueError as exc:
                raise ValidationError(f"{tool}: {exc}") from exc
        return limits

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The same checks the client makes before a call, so a saved row is usable.
        candidate = McpServer(**{name: cleaned.get(name) for name in CONFIG_FIELDS})
        try:
            mcp_client.config_from_row(candidate)
        except mcp_client.ToolRefusedError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    form = McpServerForm
    list_display = [
        "name",
        "transport",
        "endpoint",
        "timeout_seconds",
        "rate_limit",
        "enabled",
        "updated_at",
    ]
    list_filter = ["transport", "enabled"]
    search_fields = ["name", "url"]
    readonly_fields = ["tools", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "transport", "enabled", "timeout_seconds"]}),
        ("stdio", {"fields": ["command", "env"]}),
        ("streamable HTTP", {"fields": ["url"]}),
        (
            "Rate limits",
            {
                "fields": ["rate_limit", "tool_rate_limits"],
                "description": "shared by every worker; a call over a limit waits for its slot",
            },
        ),
        ("Tools", {"fields": ["tools"], "description": "asked from the server on each visit"}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="command or URL")
    def endpoint(self, obj: McpServer) -> str:
        if obj.transport == McpServer.Transport.HTTP:
            return obj.url
        return " ".join(obj.command or [])

    @admin.display(description="tools")
    def tools(self, obj: McpServer) -> str:
        """The server's tools as it lists them now, or why it could not be asked."""
        if obj.pk is None:
            return "Save the server to list its tools."
        try:
            tools = mcp_client.list_tools(server=mcp_client.config_from_row(obj))
        except mcp_client.McpClientError as exc:
            return format_html("<strong>Could not list the tools:</strong> {}", str(exc))
        if not tools:
            return "The server offers no tools."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><code>{}</code> {}<br><small><code>{}</code></small></li>",
                (
                    (t["name"], t["description"], json.dumps(t["input_schema"].get("properties")))
                    for t in tools
                ),
            ),
        )
