"""Admin for delegations while away (docs/decision-queue.md, "Delegation while away"): the
rows are the record of who stood in for whom, so they are revoked, never deleted."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from decisions import services
from decisions.models import Delegation


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "In force now")]

    def queryset(self, request, queryset: QuerySet[Delegation]):
        if self.value() == "yes":
            now = timezone.now()
            return queryset.filter(starts_at__lte=now, ends_at__gt=now, revoked_at__isnull=True)
        return queryset


@admin.register(Delegation)
class DelegationAdmin(admin.ModelAdmin):
    list_display = ["user", "delegate", "starts_at", "ends_at", "in_force", "revoked_at", "reason"]
    list_filter = [InForceFilter, "starts_at"]
    list_select_related = ["user", "delegate"]
    search_fields = ["user__username", "delegate__username", "reason"]
    autocomplete_fields = ["user", "delegate"]
    readonly_fields = ["created_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(boolean=True)
    def in_force(self, obj: Delegation) -> bool:
        now = timezone.now()
        return obj.revoked_at is None and obj.starts_at <= now < obj.ends_at

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row says who could decide for whom, and when

    @admin.action(description="Revoke selected delegations", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Delegation]) -> None:
        for delegation in queryset:
            try:
                services.delegation_revoke(delegation_id=delegation.id, user=request.user)
            except services.DecisionError as exc:
                self.message_user(request, f"{delegation}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{delegation}: revoked", messages.SUCCESS)
