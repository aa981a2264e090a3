"""Live observations over WebSockets: ws/rail/ (every mission the reader may see) and
ws/missions/<uuid>/ (one mission and the missions it started).

A reader passes ?after=<seq> (or sends {"after": seq}) and receives every observation past it,
in bounded batches, then live ones. Pushes through the channel layer are hints: each stream
also reads the database every STUDIOX_LIVE_POLL_SECONDS, which is what makes the in-memory
layer (worker pushes cannot reach the web process) and a dropped push still deliver.

Both streams carry business lines only (observations.models); ws/missions/<uuid>/?view=technical
carries a mission's technical lines too.

Frames sent: {"type": "ready", "seq": N} once subscribed, then
{"type": "observations", "observations": [payload, ...]} with payloads as in
observations.services.observation_payload plus "mission_title" and "html", the line as the
page shows it (observations.lines), which the page inserts as it is.
The only frame a reader may send is {"after": N}; any other closes the socket with 4400 (see
studiox.websockets for the codes every socket shares).
Close codes: 4401 not logged in, 4403 not allowed to see this mission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from missions.selectors import mission_get_for, missions_visible_to
from observations import selectors
from observations.lines import observation_line_html
from observations.models import line_is_technical
from observations.publish import RAIL_GROUP, mission_group
from studiox.websockets import CLOSE_BAD_FRAME, StudioConsumer

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
LATE_COMMIT_SECONDS = 5.0  # how long a reader looks behind its cursor for late commits
VISIBILITY_CACHE_SECONDS = 10.0
GROUPS_FOLLOWED = 100  # channel groups a mission's reader joins (itself, descendants)
# Sequence numbers are 64-bit in the database: a larger cursor could only fail every query.
MAX_SEQ = 2**63 - 1


READER_THREADS = 4
# Readers' queries run side by side on a few threads of their own, instead of queueing behind
# Django's one thread-sensitive thread (every poll in the way of every push), and hold at
# most READER_THREADS database connections per process.
_readers = ThreadPoolExecutor(max_workers=READER_THREADS, thread_name_prefix="rail-reader")


def _db(fn):
    return database_sync_to_async(fn, thread_sensitive=False, executor=_readers)


def close_reader_connections() -> None:
    """Close the readers' database connections (tests, before dropping their database)."""
    barrier = threading.Barrier(READER_THREADS, timeout=5)

    def close() -> None:
        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # holds this thread so that each task lands on another one

    for future in [_readers.submit(close) for _ in range(READER_THREADS)]:
        future.result(timeout=10)


class ObservationStream(StudioConsumer):
    """What both streams share: authorize, subscribe, catch up, then push and poll."""

    group_name = ""
    own_mission = ""  # a mission's page: its own lines carry no mission label
    technical = False  # technical lines too (a mission's technical view), not business only
    subscribed = False

    async def connect(self) -> None:
        # Accept first so the close code reaches the browser (a refused handshake has none).
        await self.accept()
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close_and_stop(CLOSE_UNAUTHENTICATED)
        if not await self.authorize():
            await self.close_and_stop(CLOSE_FORBIDDEN)
        self.seen: dict[int, float] = {}
        self.cursor = await self._start_cursor()
        self.marks: deque[tuple[float, int]] = deque([(time.monotonic(), self.cursor)])
        self.wake = asyncio.Event()
        await self.join_group(self.group_name)
        self.subscribed = True
        await self.send_json({"type": "ready", "seq": self.cursor})
        self.start_task(self._poll_forever(), name="rail poller")

    async def receive_json(self, content, **kwargs) -> None:
        """{"after": N}: send again everything past N (the page lost what it had)."""
        after = _as_seq(content.get("after")) if isinstance(content, dict) else None
        if after is None:
            await self.close_and_stop(CLOSE_BAD_FRAME)
        self.cursor = after
        self.seen = {seq: at for seq, at in self.seen.items() if seq <= after}
        self.marks = deque([(time.monotonic(), after)])
        self.wake.set()

    async def observations_created(self, event: dict) -> None:
        """A push from the channel layer (observations.publish)."""
        if not self.subscribed:
            return
        fresh = [p for p in event.get("observations", []) if p.get("seq") not in self.seen]
        if fresh:
            await self.deliver(await self.prepare_pushed(fresh))

    # --- for subclasses ---------------------------------------------------------------

    async def authorize(self) -> bool:
        raise NotImplementedError

    def readable(self):
        """The observations this reader may see (a queryset, evaluated in a worker thread)."""
        raise NotImplementedError

    async def prepare_pushed(self, payloads: list[dict]) -> list[dict]:
        return payloads

    # --- delivery ---------------------------------------------------------------------

    async def deliver(self, payloads: list[dict]) -> None:
        # Check and mark without awaiting in between, so a push and a poll racing for the same
        # row cannot both send it.
        now = time.monotonic()
        fresh = []
        for payload in sorted(payloads, key=lambda p: p["seq"]):
            if payload["seq"] in self.seen:
                continue
            self.seen[payload["seq"]] = now
            self.cursor = max(self.cursor, payload["seq"])
            fresh.append(payload)
        # The cursor passed technical lines too: they are skipped, not read again.
        if not self.technical:
            fresh = [p for p in fresh if not line_is_technical(kind=p["kind"], data=p.get("data"))]
        if fresh:
            own = self.own_mission
            lines = [{**p, "html": observation_line_html(p, own_mission=own)} for p in fresh]
            await self.send_json({"type": "observations", "observations": lines})

    def _query(self, name: str) -> str | None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        return (query.get(name) or [None])[0]

    async def _start_cursor(self) -> int:
        after = _as_seq(self._query("after"))
        if after is not None:
            return after
        return await _db(selectors.observation_last_seq)()

    async def _poll_forever(self) -> None:
        while True:
            try:
                full = await self._pull()
            except Exception:  # the database is away for a moment: pushes still flow
                logger.warning("rail reader could not read observations", exc_info=True)
                full = False
            if full:  # a long gap: carry on with the next batch at once
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), settings.STUDIOX_LIVE_POLL_SECONDS)

    async def _pull(self) -> bool:
        """One read of the database; True if the batch was full."""
        floor = self._floor()
        self.seen = {seq: at for seq, at in self.seen.items() if seq > floor}
        rows, full = await _db(self._read)(self.cursor, floor, frozenset(self.seen))
        await self.deliver(rows)
        self.marks.append((time.monotonic(), self.cursor))
        return full

    def _floor(self) -> int:
        # The cursor as it was LATE_COMMIT_SECONDS ago: a row numbered below that and still
        # unread belongs to a transaction longer than that, which only its push can bring.
        horizon = time.monotonic() - LATE_COMMIT_SECONDS
        while len(self.marks) > 1 and self.marks[1][0] <= horizon:
            self.marks.popleft()
        return self.marks[0][1]

    def _read(self, after: int, floor: int, seen: frozenset[int]) -> tuple[list[dict], bool]:
        scope = self.readable()
        rows = selectors.observations_after(scope=scope, after=after)
        full = len(rows) >= selectors.CATCH_UP_BATCH
        if not full:  # caught up: now look behind the cursor for late commits
            behind = selectors.observation_ids_between(scope=scope, floor=floor, upto=after)
            late = [seq for seq in behind if seq not in seen]
            if late:
                rows = selectors.observations_with_ids(scope=scope, ids=late) + rows
        return rows, full


class MissionObservationsConsumer(ObservationStream):
    """ws/missions/<uuid>/: one mission's observations and those of its descendants (the
    missions it started, and theirs) that the reader may see, as one sequence."""

    async def authorize(self) -> bool:
        mission_id = self.scope["url_route"]["kwargs"]["mission_id"]
        mission = await _db(mission_get_for)(user=self.user, mission_id=mission_id)
        if mission is None:
            return False
        self.mission = mission
        self.mission_id = str(mission.id)
        self.own_mission = self.mission_id
        self.technical = selectors.wants_technical_view(self._query("view"))
        self.group_name = mission_group(self.mission_id)
        self.labels: dict[str, str] = await _db(self._covered)()
        self.followed: set[str] = {self.mission_id}
        await self._follow_descendants()  # before "ready": every push from then on arrives
        return True

    def _covered(self) -> dict[str, str]:
        return selectors.mission_rail_labels(user=self.user, mission=self.mission)

    def readable(self):
        # Resolved again on every poll: a child started since the last one joins the scope,
        # and the catch-up reads one sequence across all of them.
        self.labels = self._covered()
        return selectors.observations_of_missions(mission_ids=self.labels)

    async def _pull(self) -> bool:
        full = await super()._pull()
        await self._follow_descendants()
        return full

    async def _follow_descendants(self) -> None:
        """Hear the descendants' pushes too; beyond GROUPS_FOLLOWED the polls bring them."""
        for mission_id in list(self.labels):
            if len(self.followed) >= GROUPS_FOLLOWED:
                return
            if mission_id not in self.followed:
                self.followed.add(mission_id)
                await self.join_group(mission_group(mission_id))

    async def prepare_pushed(self, payloads: list[dict]) -> list[dict]:
        labels = self.labels
        return [
            {**p, "mission_title": labels[p["mission_id"]]}
            for p in payloads
            if p.get("mission_id") in labels
        ]


class RailConsumer(ObservationStream):
    """ws/rail/: observations of every mission the reader may see."""

    group_name = RAIL_GROUP

    async def authorize(self) -> bool:
        self.sees_all = await _db(selectors.user_sees_all_missions)(self.user)
        self.labels: dict[str, str] = {}
        self.visible: dict[str, tuple[bool, float]] = {}
        return True

    def readable(self):
        return selectors.observations_visible_to(self.user)

    async def prepare_pushed(self, payloads: list[dict]) -> list[dict]:
        mission_ids = {p["mission_id"] for p in payloads}
        if not self.sees_all:
            allowed = await self._visible(mission_ids)
            payloads = [p for p in payloads if p["mission_id"] in allowed]
        unknown = [m for m in mission_ids if m not in self.labels]
        if unknown:
            self.labels.update(await _db(selectors.mission_labels)(mission_ids=unknown))
            if len(self.labels) > 10_000:  # a long-lived reader: start the cache over
                self.labels = {}
        return [{**p, "mission_title": self.labels.get(p["mission_id"], "")} for p in payloads]

    async def _visible(self, mission_ids: set[str]) -> set[str]:
        now = time.monotonic()
        fresh = {
            m
            for m in mission_ids
            if m in self.visible and now - self.visible[m][1] < VISIBILITY_CACHE_SECONDS
        }
        unknown = mission_ids - fresh
        if unknown:
            allowed = await _db(self._allowed)(unknown)
            if len(self.visible) > 10_000:  # a long-lived reader: start the cache over
                self.visible = {m: self.visible[m] for m in fresh}
            for mission_id in unknown:
                self.visible[mission_id] = (mission_id in allowed, now)
        return {m for m in mission_ids if self.visible[m][0]}

    def _allowed(self, mission_ids: set[str]) -> set[str]:
        ids = missions_visible_to(self.user).filter(id__in=mission_ids).values_list("id", flat=True)
        return {str(mission_id) for mission_id in ids}


def _as_seq(value) -> int | None:
    if isinstance(value, bool | float):  # JSON true, 1.5, 1e400 (infinity): not a sequence number
        return None
    try:
        seq = int(value)
    except (TypeError, ValueError):
        return None
    return seq if 0 <= seq <= MAX_SEQ else None
