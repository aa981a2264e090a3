"""A Schedule starts a mission at every fire time of its cron expression; a ScheduleFire row
is the proof that one fire time was handled, unique per schedule and fire time."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Schedule(models.Model):
    class Source(models.TextChoices):
        CODE = "code", "Code (@mission schedule=...)"
        ADMIN = "admin", "Admin"

    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip missed fire times"
        ONCE = "once", "Once for all missed fire times"
        ALL = "all", "Every missed fire time"

    name = models.CharField(max_length=100, unique=True)
    mission_type = models.CharField(max_length=100)
    cron = models.CharField(
        max_length=100,
        help_text="minute hour day month weekday, e.g. '0 6 * * 1-5' (a sixth field: seconds)",
    )
    input = models.JSONField(default=dict, blank=True, help_text="the mission's input (JSON)")
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone of the cron, e.g. Europe/Paris"
    )
    enabled = models.BooleanField(default=True)
    catch_up = models.CharField(
        max_length=4,
        choices=CatchUp.choices,
        default=CatchUp.ONCE,
        help_text="what to start for fire times missed while the scheduler was down",
    )
    run_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="who the missions are started by; empty: the operator who saves it",
    )
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.ADMIN)
    handled_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="fire times up to here are handled: started, skipped, or before the schedule",
    )
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    skipped_count = models.PositiveIntegerField(
        default=0, help_text="missed fire times that started no mission (catch-up policy)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_fire_at"], name="schedule_due_idx")]
        constraints = [
            # A mission declares at most one schedule in code.
            models.UniqueConstraint(
                fields=["mission_type"],
                condition=Q(source="code"),
                name="schedule_one_per_mission_in_code",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} {self.timezone})"


class ScheduleFire(models.Model):
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fires")
    fire_time = models.DateTimeField()
    mission = models.ForeignKey(
        "missions.Mission",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    missed = models.PositiveIntegerField(
        default=0, help_text="earlier missed fire times this mission stands for"
    )
    error = models.TextField(blank=True, help_text="why no mission started")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-fire_time"]
        constraints = [
            # Exactly one mission per fire time, whatever schedulers race or crash.
            models.UniqueConstraint(fields=["schedule", "fire_time"], name="schedule_fire_once"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule.name} at {self.fire_time:%Y-%m-%d %H:%M:%S} UTC"
