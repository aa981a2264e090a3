"""What the rate limiter keeps in the database on the embedded default (integrations.ratelimit);
with Redis configured it keeps the same in Redis instead."""

from django.db import models


class RateLimitWindow(models.Model):
    """One rate-limited key (an MCP server, a tool, the LLM provider): the calls still inside
    its window and the callers waiting for a slot. Its row is the lock every worker takes."""

    key = models.CharField(max_length=300, unique=True)
    calls = models.JSONField(
        default=list, blank=True, help_text="[time in µs since the epoch, weight] of each call"
    )
    waiters = models.JSONField(
        default=dict, blank=True, help_text="waiter -> [first seen, slot given], in µs"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}: {len(self.calls)} call(s) in the window, {len(self.waiters)} waiting"
