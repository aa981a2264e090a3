"""Retention (docs/concepts.md): steps and observations of missions that finished longer ago than
STUDIOX_RETENTION_DAYS are purged; the Mission row (its verdict) and decision audit trails stay.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.utils import timezone

from missions.models import Mission, Step
from observations.models import Observation

logger = logging.getLogger(__name__)

KEPT_APPS = ("missions", "observations")  # rows of other apps pointing at a step are kept


def missions_expired(*, now: datetime | None = None) -> QuerySet[Mission]:
    """Finished missions past the retention period (served by the finished_at index)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.STUDIOX_RETENTION_DAYS)
    return Mission.objects.filter(finished_at__lt=cutoff, status__in=Mission.FINAL_STATUSES)


def missions_purge_expired(*, now: datetime | None = None, batch_size: int = 500) -> dict:
    """Delete expired missions' steps and observations, `batch_size` rows per transaction,
    so neither memory nor lock time grows with the backlog. Returns what was deleted."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    expired = missions_expired(now=now).values("id")
    steps = _purgeable_steps(Step.objects.filter(mission__in=expired))
    observations = Observation.objects.filter(mission__in=expired)
    purged = {
        "observations": _delete_in_batches(observations, batch_size),
        "steps": _delete_in_batches(steps, batch_size),
    }
    if any(purged.values()):
        logger.info("retention purged %(steps)d steps and %(observations)d observations", purged)
    return purged


def _purgeable_steps(steps: QuerySet[Step]) -> QuerySet[Step]:
    # A decision (or any row of another app) that points at a step is part of an audit trail:
    # deleting the step would cascade into it, so such steps stay.
    for relation in Step._meta.related_objects:
        related: type[Model] = relation.related_model
        if related._meta.app_label in KEPT_APPS:
            continue
        referencing = related._default_manager.filter(**{relation.field.name: OuterRef("pk")})
        steps = steps.exclude(Exists(referencing))
    return steps


def _delete_in_batches(rows: QuerySet, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            _, per_model = rows.model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(rows.model._meta.label, 0)
        if len(ids) < batch_size:
            return deleted
