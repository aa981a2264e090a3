"""Operators' admin for schedules. A schedule declared in code is changed in code; here only
its enabled flag. Fires are the scheduler's record: read-only."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from missions.runtime import registered_definitions
from schedules import selectors, services
from schedules.models import Schedule, ScheduleFire

RECENT_FIRES = 10


def _mission_types() -> list[tuple[str, str]]:
    return [(d.name, f"{d.title} ({d.name})") for d in registered_definitions()]


def _mission_link(mission_id, status: str | None) -> str:
    if mission_id is None:
        return "—"
    url = reverse("admin:missions_mission_change", args=[mission_id])
    return format_html('<a href="{}">{}</a> {}', url, str(mission_id)[:8], status or "")


def _in_zone(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({moment:%H:%M:%S} UTC)"


class ScheduleForm(forms.ModelForm):
    mission_type = forms.ChoiceField(choices=_mission_types)

    class Meta:
        model = Schedule
        fields = ("name", "mission_type", "cron", "timezone", "input", "catch_up", "run_as")

    def clean(self):
        data = super().clean()
        # Fields shown read-only (a schedule from code) are not in the form: take the row's.
        values = {
            key: data.get(key, getattr(self.instance, key))
            for key in ("mission_type", "cron", "timezone", "input")
        }
        if any(key in self.errors for key in values):
            return data
        try:
            stored = services.schedule_validate(**values)
        except services.ScheduleInvalid as exc:
            for key, messages_ in exc.errors.items():
                self.add_error(key if key in self.fields else None, messages_)
            return data
        if "input" in self.fields:
            data["input"] = stored
        return data


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name",
        "mission_type",
        "cron",
        "timezone",
        "enabled",
        "next_fire",
        "last_run",
        "skipped_count",
        "source",
    )
    list_filter = ("enabled", "source", "catch_up")
    search_fields = ("name", "mission_type")
    actions = ("enable", "disable")
    fields = (
        "name",
        "mission_type",
        "cron",
        "timezone",
        "input",
        "catch_up",
        "run_as",
        "enabled",
        "source",
        "next_fire",
        "upcoming",
        "handled_until",
        "skipped_count",
        "recent_runs",
    )
    CODE_EDITABLE = ("enabled",)
    COMPUTED = ("source", "next_fire", "upcoming", "handled_until", "skipped_count", "recent_runs")

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None):
        if obj is not None and obj.source == Schedule.Source.CODE:
            return tuple(f for f in self.fields if f not in self.CODE_EDITABLE)
        return self.COMPUTED

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return selectors.schedules_with_last_fire()

    def save_model(self, request: HttpRequest, obj: Schedule, form, change: bool) -> None:
        services.schedule_save(schedule=obj, by=request.user)

    @admin.display(description="next fire time", ordering="next_fire_at")
    def next_fire(self, schedule: Schedule) -> str:
        return _in_zone(schedule.next_fire_at, schedule.timezone)

    @admin.display(description="last run")
    def last_run(self, schedule: Schedule) -> str:
        fired = getattr(schedule, "last_fire_at", None)
        if fired is None:
            return "—"
        return format_html(
            "{} {}",
            f"{fired:%Y-%m-%d %H:%M} UTC",
            _mission_link(schedule.last_mission_id, schedule.last_mission_status),
        )

    @admin.display(description="next five fire times")
    def upcoming(self, schedule: Schedule) -> str:
        if schedule.pk is None:
            return "—"
        times = selectors.schedule_upcoming(schedule, count=5)
        return format_html_join(
            "", "<div>{}</div>", ((_in_zone(t, schedule.timezone),) for t in times)
        )

    @admin.display(description="last runs")
    def recent_runs(self, schedule: Schedule) -> str:
        fires = selectors.schedule_recent_fires(schedule, limit=RECENT_FIRES)
        if not fires:
            return "none yet"
        return format_html_join(
            "",
            "<div>{} — {} {}</div>",
            (
                (
                    _in_zone(fire.fire_time, schedule.timezone),
                    _mission_link(fire.mission_id, fire.mission.status if fire.mission else None),
                    fire.error,
                )
                for fire in fires
            ),
        )

    @admin.action(description="Enable the selected schedules (they fire from now on)")
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            services.schedule_set_enabled(schedule=schedule, enabled=True)
        messages.success(request, f"{len(queryset)} schedule(s) enabled.")

    @admin.action(description="Disable the selected schedules")
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            services.schedule_set_enabled(schedule=schedule, enabled=False)
        messages.success(request, f"{len(queryset)} schedule(s) disabled.")


@admin.register(ScheduleFire)
class ScheduleFireAdmin(admin.ModelAdmin):
    """What each fire time started: the scheduler writes these rows, nobody else."""

    list_display = ("schedule", "fire_time", "mission_link", "missed", "error")
    list_filter = ("schedule",)
    list_select_related = ("schedule", "mission")
    date_hierarchy = "fire_time"
    fields = ("schedule", "fire_time", "mission_link", "missed", "error", "created_at")
    readonly_fields = fields

    @admin.display(description="mission")
    def mission_link(self, fire: ScheduleFire) -> str:
        return _mission_link(fire.mission_id, fire.mission.status if fire.mission else None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
