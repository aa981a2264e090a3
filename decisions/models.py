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
