from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from decisions import services
from decisions.export import (
    audit_export_header,
    audit_export_rows,
    decision_export_header,
    decision_export_rows,
)
from decisions.models import Decision, DecisionAudit
from decisions.selectors import decision_search_q
from studiox.csv_export import csv_response


class ReassignForm(forms.Form):
    to_user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True), label="Give to"
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Reason (recorded)")


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue")]

    def queryset(self, request, queryset: QuerySet[Decision]):
        if self.value() == "yes":
            return queryset.filter(status=Decision.Status.PENDING, due_at__lt=timezone.now())
        return queryset


class AuditInline(admin.TabularInline):
    model = DecisionAudit
    extra = 0
    can_delete = False
    fields = ["at", "action", "username", "reason", "before", "after"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "role",
        "status",
        "outcome",
        "due_at",
        "overdue",
        "decided_by_name",
        "created_at",
    ]
    list_filter = ["status", "role", OverdueFilter]
    list_select_related = ["role"]
    search_fields = ["title", "summary", "mission__id", "decided_by_name", "step_name"]
    date_hierarchy = "created_at"
    inlines = [AuditInline]
    actions = ["reassign", "export_csv"]
    readonly_fields = [
        "mission",
        "step_name",
        "title",
        "summary",
        "context",
        "options",
        "role",
        "status",
        "outcome",
        "comment",
        "created_at",
        "due_at",
        "decided_by",
        "decided_by_name",
        "decided_at",
        "claimed_by",
        "claimed_at",
        "escalation_role",
        "reminded_at",
        "escalated_at",
    ]

    @admin.display(boolean=True)
    def overdue(self, obj: Decision) -> bool:
        return obj.is_overdue

    def has_add_permission(self, request) -> bool:
        return False  # decisions are opened by missions

    def get_search_results(self, request, queryset, search_term):
        """The admin's own field search, and the queue's: the mission's business keys too."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if not search_term.strip():
            return found, may_have_duplicates
        return found | queryset.filter(decision_search_q(search_term)), may_have_duplicates

    @admin.action(description="Export selected decisions as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Decision]):
        return csv_response(
            filename="decisions.csv",
            header=decision_export_header(),
            rows=decision_export_rows(queryset.order_by("-created_at", "-id")),
        )

    @admin.action(description="Reassign selected pending decisions…", permissions=["change"])
    def reassign(self, request: HttpRequest, queryset: QuerySet[Decision]) -> HttpResponse | None:
        form = ReassignForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for decision in queryset:
                try:
                    services.decision_reassign(
                        decision=decision,
                        to_user=form.cleaned_data["to_user"],
                        by=request.user,
                        reason=form.cleaned_data["reason"],
                    )
                except services.DecisionError as exc:
                    self.message_user(request, f"{decision}: {exc}", messages.ERROR)
                else:
                    self.message_user(request, f"{decision}: reassigned", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "decisions": queryset,
            "opts": self.model._meta,
            "title": "Reassign decisions",
        }
        return render(request, "admin/decisions/reassign.html", context)


@admin.register(DecisionAudit)
class DecisionAuditAdmin(admin.ModelAdmin):
    list_display = ["decision", "action", "username", "at"]
    list_select_related = ["decision"]
    list_filter = ["action"]
    search_fields = ["decision__title", "username", "reason"]
    actions = ["export_csv"]
    readonly_fields = ["decision", "action", "user", "username", "at", "reason", "before", "after"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Export selected audit entries as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[DecisionAudit]):
        rows = queryset.select_related("decision").order_by("decision", "at", "id")
        return csv_response(
            filename="decision-audit.csv",
            header=audit_export_header(),
            rows=audit_export_rows(rows.iterator(chunk_size=500)),
        )


# Role webhooks and their deliveries, and delegations while away: registered by importing
# their modules.
from decisions import delegations_admin, webhooks_admin  # noqa: E402, F401
