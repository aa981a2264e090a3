"""Django's admin autodiscovery imports this module: each integration registers its own admin."""

from django.contrib import admin

import integrations.mcp_client.admin  # noqa: F401
from integrations.models import RateLimitWindow


@admin.register(RateLimitWindow)
class RateLimitWindowAdmin(admin.ModelAdmin):
    """What the database-backed rate limiter holds now; read-only, as workers rewrite it."""

    list_display = ["key", "calls_in_window", "waiting", "updated_at"]
    search_fields = ["key"]
    readonly_fields = ["key", "calls", "waiters", "updated_at"]

    @admin.display(description="calls in the window")
    def calls_in_window(self, obj: RateLimitWindow) -> int:
        return len(obj.calls)

    @admin.display(description="waiting")
    def waiting(self, obj: RateLimitWindow) -> int:
        return len(obj.waiters)

    def has_add_permission(self, request) -> bool:
        return False
