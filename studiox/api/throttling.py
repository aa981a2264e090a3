"""Rate limits (429 with Retry-After). The rates are read from settings on every request, so a
change to REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] applies without a restart of the module.

Requests are counted per window (a minute for "6000/minute") with one atomic increment, and the
previous window's count, weighted by how much of it still falls within the last `duration`
seconds, is added (a sliding window, without the double burst at a fixed window's edge). DRF's
own throttles keep the time of every request in one cache value, read and written back whole on
each request: at thousands a minute that list was pickled and sent to Redis twice per request,
and two web processes writing it at once lost each other's requests.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


def _rate(scope: str) -> str | None:
    return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope)


class CountingThrottle(SimpleRateThrottle):
    """At most `num_requests` within any `duration` seconds for each cache key (estimated)."""

    current = previous = 0
    window_start = 0.0

    def get_rate(self) -> str | None:
        return _rate(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_start = window * self.duration
        key = f"{self.key}:{window}"
        self.current, self.previous = self._counts(key, f"{self.key}:{window - 1}")
        if self._estimate(self.current, at=self.now) <= self.num_requests:
            return True
        self.cache.decr(key)  # a refused request is not counted, as in DRF
        self.current -= 1
        return False

    def _counts(self, key: str, previous_key: str) -> tuple[int, int]:
        """This request's number in its window, and the previous window's count."""
        expires = 2 * self.duration + 1  # the counter outlives the next window
        # DRF's throttles hold django.core.cache.cache, a proxy to this context's backend.
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is cache else self.cache
        if isinstance(backend, RedisCache):
            return _counts_in_one_round_trip(backend, key, previous_key, expires=expires)
        return self._count(key, expires=expires), self.cache.get(previous_key, 0)

    def _count(self, key: str, *, expires: int) -> int:
        """This request's number in its window; the counter expires after the next window."""
        try:
            return self.cache.incr(key)
        except ValueError:  # the window's first request (or its counter just expired)
            if self.cache.add(key, 1, timeout=expires):
                return 1
            return self.cache.incr(key)  # another process started the window meanwhile

    def _estimate(self, current: int, *, at: float) -> float:
        elapsed = (at - self.window_start) / self.duration
        return self.previous * max(0.0, 1 - elapsed) + current

    def wait(self) -> float:
        """Seconds until one more request fits."""
        room = self.num_requests - self.current - 1  # what the previous window may still use
        if room >= 0 and self.previous:
            fraction = 1 - room / self.previous  # of this window, before it fits
            return max(1.0, math.ceil(self.window_start + fraction * self.duration - self.now))
        # Not before this window ends, then until its own weight has dropped enough.
        fraction = 1 - (self.num_requests - 1) / max(self.current, 1)
        return max(1.0, math.ceil(self.window_start + (1 + fraction) * self.duration - self.now))


def _counts_in_one_round_trip(
    backend: RedisCache, key: str, previous_key: str, *, expires: int
) -> tuple[int, int]:
    # Every API request pays this: one pipeline instead of an increment and a read. SET NX
    # starts a missing counter (with its expiry) at 0; the integers are stored as Django's
    # Redis cache stores them, so get(), incr() and decr() read the same values.
    key = backend.make_and_validate_key(key)
    previous_key = backend.make_and_validate_key(previous_key)
    pipeline = backend._cache.get_client(key, write=True).pipeline(transaction=False)
    pipeline.set(key, 0, ex=expires, nx=True)
    pipeline.incr(key)
    pipeline.get(previous_key)
    _, current, previous = pipeline.execute()
    return current, int(previous or 0)


class AnonThrottle(CountingThrottle, AnonRateThrottle):
    pass


class UserThrottle(CountingThrottle, UserRateThrottle):
    pass


class BadTokenThrottled(Throttled):
    """Too many invalid API tokens from one address (studiox.api.authentication)."""

    default_detail = "Too many requests with an invalid API token from your address."
