"""Decisions: a human gate in a mission, with the audit trail an auditor expects."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Decision(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DECIDED = "decided", "Decided"  # an outcome other than approved/rejected
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    mission = models.ForeignKey(
        "missions.Mission", on_delete=models.CASCADE, related_name="decisions"
    )
    step_name = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="evidence shown to approvers")
    options = models.JSONField(default=list)
    role = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="decisions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    outcome = models.CharField(max_length=50, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decisions_decided",
    )
    decided_by_name = models.CharField(
        max_length=150, blank=True, help_text="kept if the user goes"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decisions_claimed",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    escalation_role = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions_escalated_to",
        help_text="who is told when the decision passes its due time unanswered",
    )
    remind_after = models.DurationField(
        null=True,
        blank=True,
        help_text="remind the role when the decision is this long unanswered (it is then due), "
        "and escalate after as long again",
    )
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "step_name"], name="decision_per_step")
        ]
        indexes = [
            models.Index(fields=["role", "status", "due_at"], name="decision_queue_idx"),
            # The queue's two sorts, in index order: a role's first page reads 20 entries
            # instead of sorting every pending decision (docs/benchmarks.md: 100,000 waiting
            # missions).
            models.Index(
                fields=["role", "due_at", "created_at", "id"],
                name="decision_pending_due_idx",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["role", "created_at", "id"],
                name="decision_pending_age_idx",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["claimed_by", "status"],
                name="decision_claimed_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["decided_by", "-decided_at"], name="decision_archive_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def live_state(self) -> str:
        """What an open decision page shows, in one comparable string: a live hint whose
        state differs from the page's tells the page to re-fetch (decisions/detail.js)."""
        return f"{self.status}:{self.claimed_by_id or ''}:{self.role_id}"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_overdue(self) -> bool:
        return self.is_pending and self.due_at is not None and self.due_at < timezone.now()


class DecisionAudit(models.Model):
    """One change of a decision: who, when, what, and why. Rows, not log lines."""

    class Action(models.TextChoices):
        OPENED = "opened", "Opened"
        CLAIMED = "claimed", "Claimed"
        RELEASED = "released", "Released"
        REASSIGNED = "reassigned", "Reassigned"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DECIDED = "decided", "Decided"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"
        REMINDED = "reminded", "Reminded"
        ESCALATED = "escalated", "Escalated"

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="audit")
    action = models.CharField(max_length=12, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150, blank=True, help_text="kept if the user goes")
    at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["decision", "at", "id"]

    def __str__(self) -> str:
        who = self.username or "system"
        return f"{self.action} by {who} at {self.at:%Y-%m-%d %H:%M:%S}"


class Delegation(models.Model):
    """While `user` is away, `delegate` may decide what `user` may decide. Four-eyes still
    holds: a delegate never decides twice on one mission, nor on what they requested."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations_given"
    )
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations_received"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["delegate", "ends_at"], name="delegation_active_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="delegation_period_valid"
            ),
            models.CheckConstraint(
                condition=~Q(user=models.F("delegate")), name="delegation_not_to_self"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.user} -> {self.delegate} ({self.starts_at:%Y-%m-%d} to {self.ends_at:%Y-%m-%d})"
        )


class RoleWebhook(models.Model):
    """An outgoing webhook: a role's decision notifications, as JSON signed with HMAC-SHA256."""

    class Format(models.TextChoices):
        JSON = "json", "StudioX JSON"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams incoming webhook"

    role = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.JSON)
    secret = models.CharField(
        max_length=200, blank=True, help_text="signs each body (X-StudioX-Signature)"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role__name", "url"]

    def __str__(self) -> str:
        return f"{self.role} -> {self.url} ({self.format})"


class WebhookDelivery(models.Model):
    """One notification sent (or being retried) to a RoleWebhook."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(RoleWebhook, on_delete=models.CASCADE, related_name="deliveries")
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhooks"
    )
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} -> {self.webhook.url} ({self.status})"
