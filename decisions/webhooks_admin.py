"""Admin for role webhooks and their deliveries (imported by decisions.admin).

A webhook's secret is write-only: the form never shows it, and leaving the field empty keeps
the one already set. Deliveries are a read-only record, with "send again"."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from decisions import webhooks
from decisions.models import RoleWebhook, WebhookDelivery


class RoleWebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", label="URL")
    secret = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=(
            "Signs each request (X-StudioX-Signature, see the Decision Queue documentation). "
            "Never shown again; leave empty to keep the current one. Required for StudioX JSON."
        ),
    )
    clear_secret = forms.BooleanField(
        required=False, help_text="Remove the secret (Slack and Teams do not check it)."
    )

    class Meta:
        model = RoleWebhook
        fields = ["role", "url", "format", "secret", "enabled"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhooks.webhook_url_check(url)
        except webhooks.WebhookError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def clean(self) -> dict:
        cleaned = super().clean()
        secret = cleaned.get("secret") or ("" if cleaned.get("clear_secret") else None)
        # None: keep what is stored (the field is never pre-filled).
        cleaned["secret"] = self.instance.secret if secret is None else secret
        if cleaned.get("format") == RoleWebhook.Format.JSON and not cleaned["secret"]:
            self.add_error("secret", "A StudioX JSON webhook needs a secret to sign with.")
        return cleaned


@admin.register(RoleWebhook)
class RoleWebhookAdmin(admin.ModelAdmin):
    form = RoleWebhookForm
    list_display = ["role", "destination", "format", "signed", "enabled", "created_at"]
    list_filter = ["format", "enabled", "role"]
    list_select_related = ["role"]
    fields = ["role", "url", "format", "secret", "clear_secret", "enabled"]

    @admin.display(description="destination")
    def destination(self, obj: RoleWebhook) -> str:
        # The host only: a Slack or Teams address is itself a credential.
        parts = urlsplit(obj.url)
        return f"{parts.scheme}://{parts.hostname}/…"

    @admin.display(boolean=True, description="secret set")
    def signed(self, obj: RoleWebhook) -> bool:
        return bool(obj.secret)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "webhook",
        "decision",
        "status",
        "attempts",
        "response_status",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "webhook__role"]
    list_select_related = ["webhook__role", "decision"]
    search_fields = ["decision__title", "last_error"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    readonly_fields = [
        "webhook",
        "decision",
        "event",
        "payload",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "delivered_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # deliveries are written by notifications

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("decisions.change_webhookdelivery")

    @admin.action(description="Send selected deliveries again", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        try:
            count = webhooks.webhook_deliveries_resend(deliveries=queryset, by=request.user)
        except webhooks.WebhookError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{count} deliveries sent again.", messages.SUCCESS)
