"""A Mission is a row; its Steps are its checkpoints. Waiting costs a row, nothing more."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from missions.mcp_models import McpServer

__all__ = [
    "ConcurrencyLimit",
    "Event",
    "EventDelivery",
    "MapItem",
    "McpServer",
    "Mission",
    "Step",
]


class Mission(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        PAUSED = "paused", "Paused"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class WaitingOn(models.TextChoices):
        NOTHING = "", "Nothing"
        DECISION = "decision", "Decision"
        EVENT = "event", "Event"
        TIMER = "timer", "Timer"
        RETRY = "retry", "Retry back-off"
        MAP = "map", "Parallel steps"
        MISSIONS = "missions", "Other missions"
        ANY = "any", "First of several"
        QUEUED = "queued", "Queued for a concurrency slot"
        RATE_LIMIT = "rate_limit", "Rate limit"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    RUNNABLE_STATUSES = (Status.PENDING, Status.RUNNING)
    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING, Status.WAITING, Status.PAUSED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by mission_type_idx (type, -created_at): a second index would only cost writes.
    type = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200, blank=True)
    input = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    verdict = models.JSONField(null=True, blank=True)
    outcome = models.CharField(
        max_length=50, blank=True, help_text="the business answer, e.g. refunded or rejected"
    )
    summary = models.CharField(max_length=300, blank=True, help_text="the verdict in one line")
    error = models.TextField(blank=True)
    priority = models.SmallIntegerField(
        default=0, help_text="higher runs first: takes free slots and worker time first"
    )
    concurrency_key = models.CharField(
        max_length=200, blank=True, help_text="the key its mission type's concurrency limit counts"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="missions_started",
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="the mission that started this one",
    )
    parent_step = models.CharField(
        max_length=200, blank=True, help_text="the parent's step that started this one"
    )

    current_step = models.CharField(max_length=200, blank=True)
    step_count = models.PositiveIntegerField(default=0, help_text="completed checkpoints")
    waiting_on = models.CharField(max_length=12, choices=WaitingOn.choices, blank=True)
    waiting_detail = models.CharField(max_length=300, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    waiting_event = models.CharField(max_length=200, blank=True)
    waiting_event_key = models.CharField(max_length=200, blank=True)
    wake_at = models.DateTimeField(null=True, blank=True, help_text="next due timer or time-out")

    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    fencing_token = models.BigIntegerField(default=0)
    lost_leases = models.PositiveIntegerField(
        default=0, help_text="workers lost while running the current step"
    )
    enqueued_at = models.DateTimeField(null=True, blank=True)

    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="missions_cancelled",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Nothing indexes the columns a step changes (lease, progress): PostgreSQL then updates
        # the row in place on its page (a HOT update) instead of writing into every index, on
        # each lease and each checkpoint. The scheduler finds lost leases among the few
        # runnable missions through mission_status_idx.
        indexes = [
            models.Index(fields=["status", "wake_at"], name="mission_due_idx"),
            models.Index(fields=["-created_at"], name="mission_newest_idx"),
            models.Index(fields=["status", "-created_at"], name="mission_status_idx"),
            models.Index(fields=["type", "-created_at"], name="mission_type_idx"),
            models.Index(
                fields=["waiting_event", "waiting_event_key"],
                name="mission_event_wait_idx",
                condition=Q(status="waiting", waiting_on__in=["event", "any"]),
            ),
            models.Index(fields=["finished_at"], name="mission_finished_idx"),
            models.Index(
                fields=["parent", "created_at"],
                name="mission_children_idx",
                condition=Q(parent__isnull=False),
            ),
            # A concurrency limit counts a type's (and key's) unfinished missions...
            models.Index(
                fields=["type", "concurrency_key"],
                name="mission_active_slot_idx",
                condition=Q(status__in=["pending", "running", "waiting", "paused"]),
            ),
            # ...and admits the next queued one, by priority then age.
            models.Index(
                fields=["type", "concurrency_key", "-priority", "created_at"],
                name="mission_queue_idx",
                condition=Q(status="waiting", waiting_on="queued"),
            ),
        ]
        constraints = [
            # A parent's step starts its child exactly once, whatever crashes or replays.
            models.UniqueConstraint(
                fields=["parent", "parent_step"],
                condition=Q(parent__isnull=False),
                name="mission_child_per_parent_step",
            ),
            models.UniqueConstraint(
                fields=["started_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="mission_idempotency_key_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title or self.type} #{str(self.id)[:8]} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class Step(models.Model):
    class Kind(models.TextChoices):
        STEP = "step", "Step"
        TRANSACTION = "transaction", "Transaction"
        SLEEP = "sleep", "Sleep"
        DECISION = "decision", "Decision"
        EVENT = "event", "Event"
        TOOL = "tool", "Tool call"
        LLM = "llm", "LLM call"
        MAP = "map", "Parallel steps"
        CHILD = "child", "Child mission"
        MISSIONS = "missions", "Wait for missions"
        ANY = "any", "First of several"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RETRYING = "retrying", "Retrying"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    # Indexed by the unique (mission, position) constraint, which also serves the foreign key.
    mission = models.ForeignKey(
        Mission, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    name = models.CharField(max_length=200)
    title = models.CharField(
        max_length=300, blank=True, help_text="what the step did, in business terms"
    )
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.STEP)
    status = models.CharField(max_length=10, choices=Status.choices)
    attempts = models.PositiveIntegerField(default=1)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=300)
    wait = models.JSONField(default=dict, blank=True, help_text="what a waiting step waits for")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mission", "position"]
        constraints = [
            models.UniqueConstraint(fields=["mission", "position"], name="step_position_unique"),
            models.UniqueConstraint(fields=["mission", "name"], name="step_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status}, attempt {self.attempts})"

    @property
    def duration_seconds(self) -> float | None:
        if not self.finished_at:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class MapItem(models.Model):
    """One item of a `ctx.map` step: its own task, lease and checkpoint, beside its siblings."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = (Status.COMPLETED, Status.FAILED)

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="map_items")
    step_name = models.CharField(max_length=200, help_text="the map step's name")
    index = models.PositiveIntegerField()
    label = models.CharField(max_length=200, blank=True, help_text="the item, as people read it")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=300)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    fencing_token = models.BigIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    wake_at = models.DateTimeField(null=True, blank=True, help_text="next retry")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mission", "step_name", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["mission", "step_name", "index"], name="map_item_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["status", "lease_expires_at"],
                name="map_item_active_idx",
                condition=Q(status__in=["pending", "running", "retrying"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.step_name}:{self.index} ({self.status})"

    @property
    def name(self) -> str:
        return f"{self.step_name}:{self.index}"


class Event(models.Model):
    """An external event; kept until a mission's wait takes it, so early arrivals are not lost."""

    name = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    received_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["received_at"]
        indexes = [
            models.Index(
                fields=["name", "key", "received_at"],
                name="event_undelivered_idx",
                condition=Q(delivered_at=None),
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["sent_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="event_idempotency_key_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}[{self.key}] at {self.received_at:%Y-%m-%d %H:%M:%S}"


class EventDelivery(models.Model):
    """Which event a mission's wait step received; one per wait step."""

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="deliveries")
    step_name = models.CharField(max_length=200)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    delivered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "event deliveries"
        constraints = [
            models.UniqueConstraint(fields=["mission", "step_name"], name="delivery_per_wait")
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.mission_id}:{self.step_name}"


class ConcurrencyLimit(models.Model):
    """A mission type's concurrency cap, per key or for the whole type: the row that admitting
    a mission and freeing a slot both lock, so a cap holds with any number of workers."""

    mission_type = models.CharField(max_length=100)
    key = models.CharField(max_length=200, blank=True, help_text="blank: the whole type")
    limit = models.PositiveIntegerField(help_text="as declared by the mission type's code")
    admissions = models.PositiveBigIntegerField(
        default=0, help_text="slots granted; every few go to the longest-waiting mission"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mission_type", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["mission_type", "key"], name="concurrency_limit_per_key"
            )
        ]

    def __str__(self) -> str:
        scope = f" [{self.key}]" if self.key else ""
        return f"{self.mission_type}{scope}: {self.limit} at once"
