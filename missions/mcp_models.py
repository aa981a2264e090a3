"""MCP servers that `ctx.call_tool` may call, configured in the admin (or in settings).

The code that reads these rows is `integrations.mcp_client` (the client and this model's
admin). The model stays in the missions app all the same: moving it would change its app
label, and with it the permissions operators hold (`missions.change_mcpserver`), its content
type and its admin addresses.
"""

from django.db import models


class McpServer(models.Model):
    class Transport(models.TextChoices):
        STDIO = "stdio", "stdio (spawned command)"
        HTTP = "http", "streamable HTTP"

    name = models.SlugField(unique=True, help_text="the `server=` name missions use")
    transport = models.CharField(max_length=10, choices=Transport.choices)
    command = models.JSONField(
        default=list, blank=True, help_text='stdio: argv as a JSON list, e.g. ["python", "-m", "x"]'
    )
    env = models.JSONField(default=dict, blank=True, help_text="stdio: extra environment")
    url = models.URLField(blank=True, help_text="streamable HTTP: the endpoint URL")
    timeout_seconds = models.FloatField(default=30.0)
    rate_limit = models.CharField(
        max_length=40,
        blank=True,
        help_text='calls to this server, shared by all workers, e.g. "20/s" or "1000/h"',
    )
    tool_rate_limits = models.JSONField(
        default=dict, blank=True, help_text='per tool, e.g. {"issue_refund": "10/s"}'
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return f"{self.name} ({self.get_transport_display()})"
