"""Rate limits on MCP servers, MCP tools and the LLM provider, shared by every worker.

A rate is "20/s", "50/min", "1000/h" or "5000/d": at most that many calls (or tokens, for a
tokens-per-minute limit) in ANY window of that length. The limiter is a sliding-window log,
not a token bucket: it keeps the time of each call still inside the window, so a burst can
never exceed the rate across a window boundary.

`try_acquire(key, rate)` records a call and returns None when the window has room, else the
time of the caller's next slot (nothing recorded). `try_hold` does the same for a call about
to be sent and returns a hold: the call counts as happening from then until `release`, when
it counts as made at that moment. However long the request takes to reach the other side
(a busy worker may be paused between taking the slot and sending), the other side sees no
more calls in any window than the rate allows, as each arrives between its hold and release.

The backend is Redis (one Lua script per call, atomic across workers) when
STUDIOX_RATE_LIMIT_URL is redis://, else the database (a row per key, locked by an UPDATE as
its transaction's first statement).

A caller that may come back later names itself (`waiter`): it joins a per-key queue, and the
slot it is given is its turn in that queue (the nth waiter gets the nth slot to come free),
so a hundred rejected callers do not all wake at the same instant to fight over one slot.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.rates import Rate, parse

__all__ = [
    "Hold",
    "Rate",
    "RateLimited",
    "parse",
    "record_usage",
    "release",
    "try_acquire",
    "try_hold",
]

MICROS = 1_000_000
# A waiter that has not come back this long after its slot is gone (cancelled, or it gave
# up): it no longer holds a place in the queue.
WAITER_GRACE_SECONDS = 30


class RateLimited(Exception):
    """A call over its rate: try again at `next_slot`. `limit` says which limit, in words."""

    def __init__(self, *, next_slot: datetime, limit: str):
        self.next_slot = next_slot
        self.limit = limit
        super().__init__(f"{limit}, next slot {next_slot:%H:%M:%S} UTC")

    @property
    def retry_after(self) -> float:
        """Seconds until the next slot: the retry back-off of a caller that cannot wait."""
        return max(0.0, (self.next_slot - timezone.now()).total_seconds())


def try_acquire(
    key: str, rate: Rate, *, weight: int = 1, waiter: str = "", record: bool = True
) -> datetime | None:
    """None when a call of `weight` fits the rate now (recorded unless `record` is False),
    else the datetime of `waiter`'s next slot. A weight above the limit counts as the
    limit (it could never fit otherwise)."""
    outcome = _backend().acquire(
        key, rate, weight=_capped(weight, rate), waiter=waiter, record=record, hold=0
    )
    return _slot(outcome)


@dataclass(frozen=True)
class Hold:
    """A slot taken for a call in flight; `release` it when the call is over."""

    key: str
    rate: Rate
    entry: str


def try_hold(key: str, rate: Rate, *, waiter: str = "", hold_seconds: float) -> Hold | datetime:
    """A Hold when a call fits the rate now, else the datetime of `waiter`'s next slot. The
    call counts as going on until `release` (at most `hold_seconds`, should the caller never
    release it: a worker that died mid-call)."""
    hold = max(1, math.ceil(hold_seconds * MICROS))
    outcome = _backend().acquire(key, rate, weight=1, waiter=waiter, record=True, hold=hold)
    if isinstance(outcome, str):
        return Hold(key=key, rate=rate, entry=outcome)
    return _slot(outcome)


def release(hold: Hold) -> None:
    """The held call is over: from now on it counts as made now, for one window."""
    _backend().release(hold.key, hold.rate, entry=hold.entry)


def record_usage(key: str, rate: Rate, *, weight: int) -> None:
    """Record `weight` (possibly negative: a correction) whatever the window holds: the
    tokens a call used beyond what it reserved before the call."""
    if weight:
        _backend().record(key, rate, weight=int(weight))


def _capped(weight: int, rate: Rate) -> int:
    return max(1, min(int(weight), rate.limit))


def _slot(outcome: int | str | None) -> datetime | None:
    """A backend's answer as the next slot's datetime; None when the call was granted."""
    if outcome is None or isinstance(outcome, str):
        return None
    return datetime.fromtimestamp(outcome / MICROS, tz=UTC)


def backend_name() -> str:
    return "redis" if _url().startswith(("redis://", "rediss://")) else "database"


# --- the window arithmetic, shared by both backends (the Lua script mirrors it) -----------
#
# Each call in the log has a time and a weight. A call counts while its time is inside the
# window; a held call's time is the end of its hold (in the future) until it is released.


def _decide(
    entries: list[tuple[int, int]],
    *,
    rank: int,
    now: int,
    window: int,
    limit: int,
    weight: int,
) -> int | None:
    """None if `weight` fits beside `entries` (time, weight; by time, all inside the
    window), else the time (µs) of the slot of the waiter with `rank` waiters ahead of it:
    when enough weight has left the window for it and for them. A call still held is
    taken to end now: a waiter woken early asks again, one woken late wastes a slot."""
    used = sum(w for _, w in entries)
    if used + weight <= limit:
        return None
    need = used + weight * (rank + 1) - limit
    # Past the weight in the window, each further window frees about `used` again.
    cycles = (need - 1) // used if used > 0 else 0
    need -= cycles * used
    freed = 0
    for at, w in entries:
        freed += w
        if freed >= need:
            return min(at, now) + window + cycles * window
    return now + window + cycles * window


# --- backends ------------------------------------------------------------------------------


def _url() -> str:
    return settings.STUDIOX_RATE_LIMIT_URL


_backends: dict[str, object] = {}


def _backend():
    url = _url()
    if url not in _backends:
        is_redis = url.startswith(("redis://", "rediss://"))
        _backends[url] = _RedisBackend(url) if is_redis else _DatabaseBackend()
    return _backends[url]


class _DatabaseBackend:
    """A RateLimitWindow row per key: its calls in the window ([time, weight, id]) and its
    waiters, as JSON."""

    def acquire(
        self, key: str, rate: Rate, *, weight: int, waiter: str, record: bool, hold: int
    ) -> int | str | None:
        """None (granted, or room on a check), the granted call's id when held, else the
        waiter's slot in µs."""
        with transaction.atomic():
            row = self._locked(key)
            now = _now_micros()
            window = rate.seconds * MICROS
            calls = sorted((c for c in row.calls if c[0] > now - window), key=lambda c: c[0])
            waiters = {
                name: place
                for name, place in row.waiters.items()
                if place[1] > now - WAITER_GRACE_SECONDS * MICROS
            }
            rank = 0
            if waiter:
                waiters.setdefault(waiter, [now, now])
                rank = sorted(waiters, key=lambda name: waiters[name][0]).index(waiter)
            slot = _decide(
                [(c[0], c[1]) for c in calls],
                rank=rank,
                now=now,
                window=window,
                limit=rate.limit,
                weight=weight,
            )
            granted = None
            if slot is None:
                waiters.pop(waiter, None)
                if record:
                    granted = uuid.uuid4().hex[:12]
                    calls.append([now + hold, weight, granted])
            elif waiter:
                waiters[waiter][1] = slot
            row.calls, row.waiters = calls, waiters
            row.save(update_fields=["calls", "waiters", "updated_at"])
            if slot is not None:
                return slot
            return granted if hold else None

    def release(self, key: str, rate: Rate, *, entry: str) -> None:
        with transaction.atomic():
            row = self._locked(key)
            now = _now_micros()
            for call in row.calls:
                if call[2] == entry:
                    call[0] = min(call[0], now)
            row.save(update_fields=["calls", "updated_at"])

    def record(self, key: str, rate: Rate, *, weight: int) -> None:
        with transaction.atomic():
            row = self._locked(key)
            now = _now_micros()
            window = rate.seconds * MICROS
            kept = [c for c in row.calls if c[0] > now - window]
            row.calls = [*kept, [now, weight, uuid.uuid4().hex[:12]]]
            row.save(update_fields=["calls", "updated_at"])

    @staticmethod
    def _locked(key: str):
        from integrations.models import RateLimitWindow  # settings import this module

        # The UPDATE comes first so that it takes the row's lock (PostgreSQL) or the
        # database's write lock (SQLite) before anything is read.
        if not RateLimitWindow.objects.filter(key=key).update(updated_at=timezone.now()):
            try:
                with transaction.atomic():
                    RateLimitWindow.objects.create(key=key)
            except IntegrityError:  # another worker created it first: lock theirs
                RateLimitWindow.objects.filter(key=key).update(updated_at=timezone.now())
        return RateLimitWindow.objects.get(key=key)


# KEYS: the log (member "seq:weight", score: the call's time in µs), the waiters (score: first
# seen), their slots (score: the slot given), the sequence. ARGV: window µs, limit, weight,
# waiter, mode ("acquire", "check", "record" or "release"), grace µs, hold µs, member.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window, limit, weight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local waiter, mode, grace = ARGV[4], ARGV[5], tonumber(ARGV[6])
local hold, member = tonumber(ARGV[7]), ARGV[8]
local ttl = math.ceil((window + hold) / 1000) + 60000
if mode == 'release' then
  local at = redis.call('ZSCORE', KEYS[1], member)
  if at and tonumber(at) > now then redis.call('ZADD', KEYS[1], 'XX', now, member) end
  return {1, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if mode == 'record' then
  local seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[1], now, seq .. ':' .. weight)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], ':(-?%d+)$'))
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - grace)
for _, name in ipairs(gone) do redis.call('ZREM', KEYS[2], name) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - grace)
if used + weight <= limit then
  local granted = ''
  if mode == 'acquire' then
    granted = redis.call('INCR', KEYS[4]) .. ':' .. weight
    redis.call('ZADD', KEYS[1], now + hold, granted)
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  if waiter ~= '' then
    redis.call('ZREM', KEYS[2], waiter)
    redis.call('ZREM', KEYS[3], waiter)
  end
  return {1, granted}
end
local rank = 0
if waiter ~= '' then
  redis.call('ZADD', KEYS[2], 'NX', now, waiter)
  rank = redis.call('ZRANK', KEYS[2], waiter)
end
local need = used + weight * (rank + 1) - limit
local cycles = 0
if used > 0 then cycles = math.floor((need - 1) / used) end
need = need - cycles * used
local slot = now + window
local freed = 0
for i = 1, #entries, 2 do
  freed = freed + tonumber(string.match(entries[i], ':(-?%d+)$'))
  if freed >= need then
    slot = math.min(tonumber(entries[i + 1]), now) + window
    break
  end
end
slot = slot + cycles * window
if waiter ~= '' then
  redis.call('ZADD', KEYS[3], slot, waiter)
  local keep = ttl + math.ceil((slot - now) / 1000) + grace / 1000
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
end
return {0, slot}
"""


class _RedisBackend:
    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.script = self.client.register_script(_SCRIPT)
        self.prefix = "studiox:ratelimit" + settings.TEST_RUNNER_SUFFIX

    def _keys(self, key: str) -> list[str]:
        base = f"{self.prefix}:{{{key}}}"  # one hash slot for all four, should it be a cluster
        return [f"{base}:log", f"{base}:waiters", f"{base}:slots", f"{base}:seq"]

    def _run(self, key: str, rate: Rate, *, mode: str, weight=1, waiter="", hold=0, member=""):
        args = [rate.seconds * MICROS, rate.limit, weight, waiter, mode]
        args += [WAITER_GRACE_SECONDS * MICROS, hold, member]
        return self.script(keys=self._keys(key), args=args)

    def acquire(
        self, key: str, rate: Rate, *, weight: int, waiter: str, record: bool, hold: int
    ) -> int | str | None:
        mode = "acquire" if record else "check"
        allowed, answer = self._run(key, rate, mode=mode, weight=weight, waiter=waiter, hold=hold)
        if not int(allowed):
            return int(answer)
        return answer.decode() if hold and answer else None

    def release(self, key: str, rate: Rate, *, entry: str) -> None:
        self._run(key, rate, mode="release", member=entry)

    def record(self, key: str, rate: Rate, *, weight: int) -> None:
        self._run(key, rate, mode="record", weight=weight)


def _now_micros() -> int:
    return math.floor(time.time() * MICROS)
