"""The rail's rows, read-only: observations are written by the engine and services only."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from observations.models import Observation
from observations.templatetags.rail import pretty_json


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "mission_link", "kind", "step_name", "message")
    list_display_links = ("id",)
    list_filter = ("kind",)
    search_fields = ("message", "step_name", "mission__id")
    list_select_related = ("mission",)
    ordering = ("-id",)
    show_full_result_count = False
    fields = ("id", "mission", "step_name", "kind", "message", "data_json", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="mission", ordering="mission")
    def mission_link(self, observation: Observation) -> str:
        url = reverse("admin:missions_mission_change", args=[observation.mission_id])
        return format_html('<a href="{}">{}</a>', url, observation.mission)

    @admin.display(description="data")
    def data_json(self, observation: Observation) -> str:
        return format_html("<pre>{}</pre>", pretty_json(observation.data))
