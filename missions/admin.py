"""Operators' admin for missions, their checkpoints, and external events.

Everything the engine owns is read-only here: a mission changes only through
missions.services (the actions below), never by editing its row.
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from missions import services
from missions.concurrency import PRIORITY_RANGE
from missions.models import ConcurrencyLimit, Event, EventDelivery, MapItem, Mission, Step
from missions.runtime import registered_definitions
from missions.search import (
    mission_amount,
    mission_business_keys,
    mission_export_header,
    mission_export_rows,
    mission_search_q,
)
from missions.selectors import concurrency_limits_with_use
from observations.models import Observation
from observations.templatetags.rail import duration, outcome_label, outcome_tone, pretty_json
from studiox.csv_export import csv_response

logger = logging.getLogger(__name__)

INLINE_STEPS = 300
INLINE_OBSERVATIONS = 100
INLINE_MAP_ITEMS = 300
CHILDREN_LISTED = 50


class ReadOnlyAdminMixin:
    """Rows the engine writes: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LatestRowsFormSet(BaseInlineFormSet):
    """Only the newest `limit` rows: a long mission has thousands, the page needs the end."""

    limit = 100

    def get_queryset(self):
        rows = super().get_queryset()
        newest = list(rows.order_by("-pk").values_list("pk", flat=True)[: self.limit])
        return rows.filter(pk__in=newest)


class StepFormSet(LatestRowsFormSet):
    limit = INLINE_STEPS


class ObservationFormSet(LatestRowsFormSet):
    limit = INLINE_OBSERVATIONS


class MapItemFormSet(LatestRowsFormSet):
    limit = INLINE_MAP_ITEMS


class StepInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Step
    formset = StepFormSet
    extra = 0
    show_change_link = True
    fields = (
        "position",
        "name",
        "title",
        "kind",
        "status",
        "attempts",
        "started_at",
        "took",
        "error",
    )
    readonly_fields = fields
    ordering = ("position",)
    verbose_name_plural = f"Steps (the latest {INLINE_STEPS})"

    @admin.display(description="duration")
    def took(self, step: Step) -> str:
        return duration(step.duration_seconds) if step.finished_at else "—"


class ObservationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Observation
    formset = ObservationFormSet
    extra = 0
    fields = ("id", "created_at", "kind", "step_name", "message")
    readonly_fields = fields
    ordering = ("-id",)
    verbose_name_plural = f"Observations (the latest {INLINE_OBSERVATIONS})"


class MapItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = MapItem
    formset = MapItemFormSet
    extra = 0
    show_change_link = True
    fields = ("step_name", "index", "label", "status", "attempts", "started_at", "took", "error")
    readonly_fields = fields
    ordering = ("step_name", "index")
    verbose_name_plural = f"Items of parallel steps (the latest {INLINE_MAP_ITEMS})"

    @admin.display(description="duration")
    def took(self, item: MapItem) -> str:
        return _took(item.started_at, item.finished_at)


def _took(started_at, finished_at) -> str:
    if not (started_at and finished_at):
        return "—"
    return duration(finished_at - started_at)


def _mission_change_link(mission_id, text: str) -> str:
    url = reverse("admin:missions_mission_change", args=[mission_id])
    return format_html('<a href="{}">{}</a>', url, text)


class StartMissionForm(forms.Form):
    """An operator starts a mission by hand, through the same service as the API."""

    type = forms.ChoiceField(choices=())
    title = forms.CharField(max_length=200, required=False, help_text="default: the type's title")
    input = forms.JSONField(initial=dict, help_text="a JSON object, as the type's input model asks")
    priority = forms.IntegerField(
        min_value=PRIORITY_RANGE[0],
        max_value=PRIORITY_RANGE[1],
        initial=0,
        help_text="higher takes free concurrency slots and worker time first",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [
            (definition.name, f"{definition.title} ({definition.name})")
            for definition in registered_definitions()
        ]


@admin.register(Mission)
class MissionAdmin(admin.ModelAdmin):
    change_list_template = "admin/missions/mission/change_list.html"
    list_display = (
        "short_id",
        "title_or_type",
        "keys",
        "amount",
        "outcome_and_status",
        "current_step",
        "waiting_on",
        "waiting_since",
        "started_by",
        "parent_short",
        "created_at",
        "finished_at",
    )
    list_display_links = ("short_id", "title_or_type")
    list_filter = ("status", "outcome", "type", "waiting_on")
    search_fields = ("id", "type", "title", "summary", "started_by__username")
    date_hierarchy = "created_at"
    list_select_related = ("started_by", "cancelled_by")
    list_per_page = 50
    show_full_result_count = False  # a count of every mission is slow and says little
    inlines = (StepInline, MapItemInline, ObservationInline)
    actions = ("cancel_selected", "retry_failed", "export_csv")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "type",
                    "version",
                    "title",
                    "status",
                    "outcome",
                    "summary",
                    "started_by",
                    "created_at",
                    "updated_at",
                    "finished_at",
                    "mission_page",
                )
            },
        ),
        ("Parent and children", {"fields": ("parent_link", "parent_step", "children_list")}),
        ("Input and verdict", {"fields": ("input_json", "verdict_json", "error")}),
        (
            "Where it is",
            {
                "fields": (
                    "current_step",
                    "step_count",
                    "waiting_on",
                    "waiting_detail",
                    "waiting_since",
                    "waiting_event",
                    "waiting_event_key",
                    "wake_at",
                    "priority",
                    "concurrency_key",
                )
            },
        ),
        (
            "Engine state",
            {
                "classes": ("collapse",),
                "fields": (
                    "lease_owner",
                    "lease_expires_at",
                    "fencing_token",
                    "lost_leases",
                    "enqueued_at",
                    "idempotency_key",
                    "request_fingerprint",
                ),
            },
        ),
        ("Cancellation", {"fields": ("cancel_requested_at", "cancelled_by")}),
    )
    readonly_fields = tuple(
        name for _, options in fieldsets for name in options["fields"]
    )  # every field: the engine owns the row

    def has_add_permission(self, request) -> bool:
        return False  # missions start through mission_start: the start form below, API, MCP

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        may_start = self.has_change_permission(request)
        return super().changelist_view(request, {**(extra_context or {}), "may_start": may_start})

    def get_urls(self):
        start = path(
            "start/",
            self.admin_site.admin_view(self.start_view),
            name="missions_mission_start",
        )
        return [start, *super().get_urls()]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = StartMissionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                started = services.mission_start(started_by=request.user, **form.cleaned_data)
            except services.MissionInputError as exc:
                form.add_error(
                    "input", "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
                )
            except services.MissionError as exc:
                form.add_error(None, str(exc))
            else:
                mission = started.mission
                self.message_user(request, f"Started {mission}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:missions_mission_change", args=[mission.id])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Start a mission",
            "form": form,
        }
        return TemplateResponse(request, "admin/missions/mission/start.html", context)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # verdicts and decision audit trails are kept; retention purges the rest

    def view_on_site(self, mission: Mission) -> str:
        return reverse("missions:detail", args=[mission.id])

    @admin.display(description="id", ordering="id")
    def short_id(self, mission: Mission) -> str:
        return str(mission.id)[:8]

    @admin.display(description="mission", ordering="title")
    def title_or_type(self, mission: Mission) -> str:
        return mission.title or mission.type

    class Media:
        css = {"all": ("missions/admin.css",)}

    @admin.display(description="outcome", ordering="outcome")
    def outcome_and_status(self, mission: Mission) -> str:
        """The business outcome in its colour, the status beside it (as on the mission pages)."""
        status = format_html(
            '<span class="badge secondary">{}</span>', mission.get_status_display()
        )
        if not mission.outcome:
            return status
        badge = format_html(
            '<span class="badge outcome {}" title="{}">{}</span>',
            outcome_tone(mission.outcome),
            mission.summary,
            outcome_label(mission.outcome),
        )
        return format_html("{} {}", badge, status)

    @admin.display(description="keys")
    def keys(self, mission: Mission) -> str:
        return " · ".join(f"{key.label} {key.value}" for key in mission_business_keys(mission))

    @admin.display(description="amount")
    def amount(self, mission: Mission) -> str:
        return str(mission_amount(mission) or "")

    def get_search_results(self, request, queryset, search_term):
        """The admin's own field search, and the web's: declared business keys included."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if not search_term.strip():
            return found, may_have_duplicates
        return found | queryset.filter(mission_search_q(search_term)), may_have_duplicates

    @admin.action(description="Export selected missions as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Mission]):
        rows = queryset.select_related("started_by").order_by("-created_at", "-id")
        return csv_response(
            filename="missions.csv",
            header=mission_export_header(),
            rows=mission_export_rows(rows.iterator(chunk_size=500)),
        )

    @admin.display(description="mission page")
    def mission_page(self, mission: Mission) -> str:
        return format_html('<a href="{}">timeline and live rail</a>', self.view_on_site(mission))

    @admin.display(description="parent", ordering="parent")
    def parent_short(self, mission: Mission) -> str:
        if mission.parent_id is None:
            return "—"
        return _mission_change_link(mission.parent_id, str(mission.parent_id)[:8])

    @admin.display(description="started by mission")
    def parent_link(self, mission: Mission) -> str:
        if mission.parent_id is None:
            return "—"
        return _mission_change_link(mission.parent_id, str(mission.parent))

    @admin.display(description="missions it started")
    def children_list(self, mission: Mission) -> str:
        children = list(mission.children.order_by("created_at", "id")[: CHILDREN_LISTED + 1])
        if not children:
            return "—"
        items = format_html_join(
            "",
            "<li>{}</li>",
            ((_mission_change_link(child.id, str(child)),) for child in children[:CHILDREN_LISTED]),
        )
        every = reverse("admin:missions_mission_changelist") + f"?parent__exact={mission.id}"
        more = format_html('<li><a href="{}">every one of them</a></li>', every)
        return format_html("<ul>{}{}</ul>", items, more if len(children) > CHILDREN_LISTED else "")

    @admin.display(description="input")
    def input_json(self, mission: Mission) -> str:
        return format_html("<pre>{}</pre>", pretty_json(mission.input))

    @admin.display(description="verdict")
    def verdict_json(self, mission: Mission) -> str:
        return format_html("<pre>{}</pre>", pretty_json(mission.verdict))

    @admin.action(description="Cancel selected missions", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        def cancel(mission: Mission) -> None:
            services.mission_cancel(mission=mission, by=request.user, reason="from the admin")

        self._each(request, queryset, cancel, "Cancelled")

    @admin.action(description="Retry selected failed missions", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Mission]) -> None:
        not_failed = queryset.exclude(status=Mission.Status.FAILED).count()
        if not_failed:
            self.message_user(
                request, f"Skipped {not_failed} missions that have not failed.", messages.WARNING
            )

        def retry(mission: Mission) -> None:
            services.mission_retry(mission=mission, by=request.user)

        self._each(request, queryset.filter(status=Mission.Status.FAILED), retry, "Retried")

    def _each(self, request: HttpRequest, queryset: QuerySet[Mission], operate, done: str):
        """One service call per mission, each in its own transaction; every refusal reported."""
        succeeded = 0
        for mission in queryset.order_by("created_at").iterator(chunk_size=200):
            try:
                operate(mission)
            except services.MissionError as exc:
                self.message_user(request, f"{mission}: {exc}", messages.ERROR)
            except Exception:  # one bad mission must not hide the others' results
                logger.exception("admin action on mission %s failed", mission.id)
                self.message_user(request, f"{mission}: internal error (logged)", messages.ERROR)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done} {succeeded} missions.", messages.SUCCESS)


@admin.register(Step)
class StepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "mission_link",
        "position",
        "kind",
        "status",
        "attempts",
        "started_at",
        "took",
    )
    list_filter = ("status", "kind")
    search_fields = ("name", "mission__id", "idempotency_key")
    list_select_related = ("mission",)
    show_full_result_count = False
    fields = (
        "mission",
        "name",
        "position",
        "kind",
        "status",
        "attempts",
        "idempotency_key",
        "started_at",
        "finished_at",
        "took",
        "result_json",
        "error",
        "wait",
    )
    readonly_fields = fields

    @admin.display(description="mission", ordering="mission")
    def mission_link(self, step: Step) -> str:
        url = reverse("admin:missions_mission_change", args=[step.mission_id])
        return format_html('<a href="{}">{}</a>', url, step.mission)

    @admin.display(description="duration")
    def took(self, step: Step) -> str:
        return duration(step.duration_seconds) if step.finished_at else "—"

    @admin.display(description="result")
    def result_json(self, step: Step) -> str:
        return format_html("<pre>{}</pre>", pretty_json(step.result))


@admin.register(MapItem)
class MapItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """One item of a parallel step (ctx.map): the engine writes it, people read it."""

    list_display = (
        "name",
        "label",
        "mission_link",
        "status",
        "attempts",
        "started_at",
        "took",
    )
    list_filter = ("status",)
    search_fields = ("mission__id", "step_name", "label")
    list_select_related = ("mission",)
    show_full_result_count = False
    fields = (
        "mission",
        "step_name",
        "index",
        "label",
        "status",
        "attempts",
        "idempotency_key",
        "lease_owner",
        "lease_expires_at",
        "enqueued_at",
        "wake_at",
        "started_at",
        "finished_at",
        "took",
        "result_json",
        "error",
    )
    readonly_fields = fields

    @admin.display(description="mission", ordering="mission")
    def mission_link(self, item: MapItem) -> str:
        return _mission_change_link(item.mission_id, str(item.mission))

    @admin.display(description="duration")
    def took(self, item: MapItem) -> str:
        return _took(item.started_at, item.finished_at)

    @admin.display(description="result")
    def result_json(self, item: MapItem) -> str:
        return format_html("<pre>{}</pre>", pretty_json(item.result))


class EventDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = EventDelivery
    extra = 0
    fields = ("mission", "step_name", "delivered_at")
    readonly_fields = fields


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "key", "sent_by", "received_at", "delivered_at")
    list_filter = ("name",)
    search_fields = ("name", "key", "idempotency_key")
    date_hierarchy = "received_at"
    list_select_related = ("sent_by",)
    fields = ("name", "key", "payload", "idempotency_key", "sent_by", "received_at", "delivered_at")
    readonly_fields = fields
    inlines = (EventDeliveryInline,)


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("event", "mission", "step_name", "delivered_at")
    search_fields = ("event__name", "event__key", "mission__id", "step_name")
    list_select_related = ("event", "mission")
    fields = ("event", "mission", "step_name", "delivered_at")
    readonly_fields = fields


@admin.register(ConcurrencyLimit)
class ConcurrencyLimitAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each limited mission type (and key) with its current use. The limit is the code's
    (`@mission(concurrency=N)`); a row appears with the first mission of its type and key."""

    list_display = ("mission_type", "key_or_all", "limit", "running", "queued", "updated_at")
    list_filter = ("mission_type",)
    search_fields = ("mission_type", "key")
    fields = ("mission_type", "key", "limit", "running", "queued", "admissions", "updated_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConcurrencyLimit]:
        return concurrency_limits_with_use(super().get_queryset(request))

    @admin.display(description="key", ordering="key")
    def key_or_all(self, row: ConcurrencyLimit) -> str:
        return row.key or "(whole type)"

    @admin.display(description="holding a slot", ordering="running")
    def running(self, row: ConcurrencyLimit) -> int:
        return row.running

    @admin.display(description="queued", ordering="queued")
    def queued(self, row: ConcurrencyLimit) -> int:
        return row.queued
