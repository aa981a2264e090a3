"""A mission woken by a worker's own commit runs next in that worker, without the broker.

A child's final commit wakes its parent; the last item of a map wakes its mission; a mission
that ends hands its concurrency slot to the next queued one. The worker process that
committed the wake is about to be free, so it runs the woken mission's pass itself, right
after its task's own work, instead of sending it through the broker to whichever process
takes it next: that hop (the send, Redis, the worker's hand-off to a pool process) is
most of the time from a child's end to its parent's next step.

Only the tasks that advance a mission or run a map item collect wakes (`woken_missions_run_here`);
anywhere else (a decision made in the web process, the scheduler's tick) a woken mission is
sent through the broker as before. Should the worker die between its commit and that pass, the
woken mission is runnable with no message on its way: the scheduler sends it again, as it does
for a lost message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from missions.engine import enqueue_advance, mission_advance

logger = logging.getLogger(__name__)

_collecting = threading.local()
# A task that already ran this long sends what it woke through the broker: a woken pass run
# here shares the task's time limit (CELERY_TASK_SOFT_TIME_LIMIT) with the work before it.
RUN_HERE_WITHIN_SECONDS = 1.0


def advance_woken(mission_id, *, priority: int = 0) -> None:
    """After the commit that woke `mission_id`: run it in this worker once its task's work is
    done, when the task collects wakes; else send it through the broker at `priority`."""
    woken = getattr(_collecting, "woken", None)
    if woken is None:
        enqueue_advance(mission_id, priority=priority)
    elif all(mission_id != queued for queued, _ in woken):
        woken.append((mission_id, priority))


@contextlib.contextmanager
def woken_missions_run_here() -> Iterator[None]:
    """Around a task's work: the first mission its commits woke runs here after it, the
    others (a task rarely wakes more than one) go through the broker, to the idle workers."""
    if getattr(_collecting, "woken", None) is not None:  # nested: the outer block runs them
        yield
        return
    _collecting.woken = []
    started = time.monotonic()
    try:
        yield
    except BaseException:
        _send_all(_stop_collecting())
        raise
    woken = _stop_collecting()
    if woken and time.monotonic() - started < RUN_HERE_WITHIN_SECONDS:
        _run_here(woken.pop(0)[0])
    _send_all(woken)


def _stop_collecting() -> list:
    woken, _collecting.woken = _collecting.woken, None
    return woken


def _send_all(woken: list[tuple]) -> None:
    for mission_id, priority in woken:
        enqueue_advance(mission_id, priority=priority)


def _run_here(mission_id) -> None:
    try:
        mission_advance(mission_id=mission_id)
    except Exception:
        # The pass took no lease, or its lease runs out: either way the broker or the
        # scheduler brings the mission to a worker again.
        logger.warning("woken mission %s: its pass failed here", mission_id, exc_info=True)
        enqueue_advance(mission_id)
