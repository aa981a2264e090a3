"""The lease: at most one worker advances a mission at a time.

A worker takes a mission's lease with one conditional UPDATE that succeeds only if the mission
is runnable and nobody holds a live lease (`lease_expires_at` unset or past). Taking it sets
`lease_owner`, `lease_expires_at` (now + STUDIOX_LEASE_SECONDS) and increments the mission's
**fencing token**. The token is the lease's identity: every checkpoint the engine writes first
checks that the mission still carries the token its worker took, so a worker that stalled past
its lease, and was taken over, matches nothing and commits nothing.

While a step runs, `LeaseHeartbeat` renews the lease every third of its length, so a slow step
is not mistaken for a dead worker. A lease that expires instead of being released means its
worker died mid-step; taking such a lease counts it in `lost_leases`, which the engine uses to
stop a step that keeps killing its workers. A pass that ends (or is stopped) releases the lease
with `lease_release`, guarded by the same token.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, models
from django.db.models import Case, F, Q, When
from django.utils import timezone

from missions import postgres_fast_paths
from missions.models import Mission, Step

logger = logging.getLogger(__name__)


def worker_identity() -> str:
    """The lease owner this thread writes: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def lease_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.STUDIOX_LEASE_SECONDS)


def lease_acquire(mission_id, worker: str) -> Mission | None:
    """Take the mission if it is runnable and nobody holds a live lease (one conditional UPDATE)."""
    return lease_acquire_with_steps(mission_id, worker, steps_from=None)[0]


def lease_acquire_with_steps(
    mission_id, worker: str, *, steps_from: int | None
) -> tuple[Mission | None, list[Step] | None]:
    """`lease_acquire`; on PostgreSQL with `steps_from` given, the same statement also reads the
    mission's steps at that position and after. None where they were not read."""
    now = timezone.now()
    expires = lease_expiry(now)
    if postgres_fast_paths.on_postgresql():
        return _lease_on_postgresql(
            mission_id, worker=worker, now=now, expires=expires, steps_from=steps_from
        )
    taken = (
        Mission.objects.filter(id=mission_id, status__in=Mission.RUNNABLE_STATUSES)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            status=Mission.Status.RUNNING,
            lease_owner=worker,
            lease_expires_at=expires,
            fencing_token=F("fencing_token") + 1,
            # A lease that expired instead of being released means its worker died mid-step.
            lost_leases=Case(
                When(lease_expires_at__isnull=False, then=F("lost_leases") + 1),
                default=F("lost_leases"),
                output_field=models.PositiveIntegerField(),
            ),
            updated_at=now,
        )
    )
    if taken != 1:
        return None, None
    return Mission.objects.get(id=mission_id), None


def _lease_on_postgresql(mission_id, **lease):
    try:
        return postgres_fast_paths.lease(mission_id=mission_id, **lease)
    except (OperationalError, InterfaceError, *_driver_connection_errors()):
        if connection.in_atomic_block:
            raise
        # Workers skip the health check before a step (studiox.celery): a connection that
        # PostgreSQL dropped while idle (a restart) shows here, so once more on a new one. Had
        # the first attempt taken the lease after all, this one finds it held and skips.
        logger.info("mission %s: database connection lost, reconnecting", mission_id)
        connection.close()
        return postgres_fast_paths.lease(mission_id=mission_id, **lease)


def _driver_connection_errors() -> tuple[type[Exception], ...]:
    # The fast path talks to psycopg directly, so its errors arrive unwrapped by Django.
    driver = connection.Database
    return (driver.OperationalError, driver.InterfaceError)


def lease_release(mission_id, token: int) -> None:
    """Give the lease back, if it is still the one taken with `token`."""
    Mission.objects.filter(id=mission_id, fencing_token=token).update(
        lease_owner="", lease_expires_at=None
    )


class Heartbeat:
    """Renews the leases of work running in this process, so slow work is not mistaken for a
    dead worker. One thread per process and subclass; the work only registers and
    unregisters. A subclass says how to renew its rows in `renew`."""

    _lock: threading.Lock
    _running: dict[tuple[Any, int], int]
    _thread: threading.Thread | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lock, cls._running, cls._thread = threading.Lock(), {}, None

    def __init__(self, row_id, token: int):
        self.key = (row_id, token)

    def __enter__(self) -> Heartbeat:
        cls = type(self)
        with cls._lock:
            cls._running[self.key] = cls._running.get(self.key, 0) + 1
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, daemon=True)
                cls._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        cls = type(self)
        with cls._lock:
            cls._running[self.key] -= 1
            if not cls._running[self.key]:
                del cls._running[self.key]

    @classmethod
    def _run(cls) -> None:
        while True:
            time.sleep(settings.STUDIOX_LEASE_SECONDS / 3)
            with cls._lock:
                running = list(cls._running)
            try:
                cls.renew(running, expires=lease_expiry(timezone.now()))
            except Exception:  # a missed renewal only risks a takeover, which fencing makes safe
                logger.warning("could not renew leases (%s)", cls.__name__, exc_info=True)
                connection.close()

    @classmethod
    def renew(cls, running: list[tuple[Any, int]], *, expires) -> None:
        raise NotImplementedError


class LeaseHeartbeat(Heartbeat):
    """Renews the leases of missions whose step runs in this process."""

    @classmethod
    def renew(cls, running: list[tuple[Any, int]], *, expires) -> None:
        for mission_id, token in running:
            # Only a lease still held: a pass that just released it must stay released.
            held = Mission.objects.filter(
                id=mission_id, fencing_token=token, lease_expires_at__isnull=False
            )
            held.update(lease_expires_at=expires)
