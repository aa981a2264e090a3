from django.db import models
from django.db.models import Q

# Who a line is for: people read business lines ("Looked up order A-1004", "Waiting for
# supervisor decision", the verdict's summary); technical lines (a step completed without a
# title, a retry with its exception text, a retry's back-off) show only on a mission's
# technical view. The engine marks technical lines with data["technical"]; a completed step
# without a title is one too, whoever wrote it.
TECHNICAL_KINDS = frozenset({"retrying"})


def line_is_technical(*, kind: str, data: object) -> bool:
    """Whether a line (an observation's kind and data) belongs to the technical view only."""
    data = data if isinstance(data, dict) else {}
    if kind in TECHNICAL_KINDS or data.get("technical") is True:
        return True
    return kind == "step_completed" and not data.get("title")


def technical_lines() -> Q:
    """line_is_technical as a query; every part is true or false, never NULL, so excluding
    it keeps every business line."""
    marked = Q(data__has_key="technical") & Q(data__technical=True)
    untitled_step = Q(kind="step_completed") & ~Q(data__has_key="title")
    return Q(kind__in=TECHNICAL_KINDS) | marked | untitled_step


class ObservationQuerySet(models.QuerySet):
    def business(self) -> "ObservationQuerySet":
        """The lines people read by default (the technical view shows every line)."""
        return self.exclude(technical_lines())


class Observation(models.Model):
    """One line of the rail, in business terms. `id` is the sequence number readers resume from."""

    class Kind(models.TextChoices):
        STARTED = "started", "Started"
        STEP_COMPLETED = "step_completed", "Step completed"
        WAITING = "waiting", "Waiting"
        RESUMED = "resumed", "Resumed"
        RETRYING = "retrying", "Retrying"
        DECISION_MADE = "decision_made", "Decision made"
        EVENT_RECEIVED = "event_received", "Event received"
        PAUSED = "paused", "Paused"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        VERDICT = "verdict", "Verdict"
        NOTE = "note", "Note"

    # Indexed by (mission, id) below, which also serves the foreign key.
    mission = models.ForeignKey(
        "missions.Mission", on_delete=models.CASCADE, related_name="observations", db_index=False
    )
    step_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ObservationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["mission", "id"], name="observation_mission_seq_idx")]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind}: {self.message}"

    @property
    def seq(self) -> int:
        return self.id

    @property
    def is_technical(self) -> bool:
        return line_is_technical(kind=self.kind, data=self.data)
