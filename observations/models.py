from django.db import models


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

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["mission", "id"], name="observation_mission_seq_idx")]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind}: {self.message}"

    @property
    def seq(self) -> int:
        return self.id
