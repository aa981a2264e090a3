"""Failure limits against guessing: wrong passwords per account and per address, invalid API
tokens per address. Past its limit within the cool-off, a key must wait out the cool-off.

The counters live in the cache (atomic increments), so a restart forgets them: they slow a
guesser down, they are not an audit trail.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


@dataclass(frozen=True)
class FailureLimit:
    """At most `limit` failures per key within `cooloff_seconds`; then the key waits."""

    scope: str
    limit: int
    cooloff_seconds: int

    def wait(self, key: str) -> int | None:
        """Whole seconds until `key` may try again, or None if it may now."""
        locked_until = cache.get(self._cache_key("locked", key))
        if locked_until is None:
            return None
        remaining = locked_until - time.time()
        return math.ceil(remaining) if remaining > 0 else None

    def record(self, key: str) -> int | None:
        """Count one failure of `key`; the wait it now faces, or None."""
        counter = self._cache_key("count", key)
        cache.add(counter, 0, timeout=self.cooloff_seconds)
        try:
            failures = cache.incr(counter)
        except ValueError:  # the counter expired between add and incr
            cache.set(counter, 1, timeout=self.cooloff_seconds)
            failures = 1
        if failures < self.limit:
            return None
        cache.set(
            self._cache_key("locked", key),
            time.time() + self.cooloff_seconds,
            timeout=self.cooloff_seconds,
        )
        cache.delete(counter)
        return self.cooloff_seconds

    def forget(self, key: str) -> None:
        """Drop the failures counted for `key` (it proved itself)."""
        cache.delete(self._cache_key("count", key))

    def _cache_key(self, kind: str, key: str) -> str:
        # Hashed: user names and addresses may hold anything a cache key must not.
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"failures:{self.scope}:{kind}:{digest}"


def _cooloff_seconds() -> int:
    return settings.STUDIOX_LOGIN_COOLOFF_MINUTES * 60


def login_account_limit() -> FailureLimit:
    return FailureLimit("login-account", settings.STUDIOX_LOGIN_FAILURE_LIMIT, _cooloff_seconds())


def login_address_limit() -> FailureLimit:
    return FailureLimit(
        "login-address", settings.STUDIOX_LOGIN_ADDRESS_FAILURE_LIMIT, _cooloff_seconds()
    )


def bad_token_limit() -> FailureLimit:
    return FailureLimit("api-token", settings.STUDIOX_TOKEN_FAILURE_LIMIT, _cooloff_seconds())


def client_address(request: HttpRequest) -> str:
    """The peer's address as the server saw it (a trusted proxy's server rewrites it);
    forwarding headers are not read, since any client can send them."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def in_minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
