"""Rate limits (429 with Retry-After). The rates are read from settings on every request, so a
change to REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] applies without a restart of the module."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


def _rate(scope: str) -> str | None:
    return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope)


class AnonThrottle(AnonRateThrottle):
    def get_rate(self) -> str | None:
        return _rate(self.scope)


class UserThrottle(UserRateThrottle):
    def get_rate(self) -> str | None:
        return _rate(self.scope)


class BadTokenThrottled(Throttled):
    """Too many invalid API tokens from one address (studiox.api.authentication)."""

    default_detail = "Too many requests with an invalid API token from your address."
