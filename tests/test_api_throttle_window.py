"""The API's rate limits (studiox.api.throttling) count requests in sliding windows: one small
counter per window in the cache, shared by every web process."""

import uuid
from types import SimpleNamespace

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import cache

from studiox.api.throttling import UserThrottle
from tests.support.api import fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture(autouse=True, params=["locmem", "redis"])
def counters(request, settings):
    """The counters in each cache StudioX runs with: per process, or Redis (one pipeline per
    request), under a prefix of this test's own (other test runners share the database)."""
    if request.param == "locmem":
        return
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis")
    settings.CACHES = {
        "default": {
            "BACKEND": "studiox.cache.SharedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"throttle-test-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def per_minute(settings):
    def rate(limit: int) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": f"{limit}/minute", "user": f"{limit}/minute"},
        }

    return rate


@pytest.fixture
def user():
    return get_user_model().objects.create_user("limited")


def ask(user, at: float) -> tuple[bool, UserThrottle]:
    """One request of `user` at time `at`, as a web process sees it."""
    throttle = UserThrottle()
    throttle.timer = lambda: at
    return throttle.allow_request(SimpleNamespace(user=user), None), throttle


def test_no_double_burst_at_a_window_edge(per_minute, user):
    per_minute(2)
    assert [ask(user, 119.8)[0], ask(user, 119.9)[0]] == [True, True]
    assert ask(user, 120.1)[0] is False  # a new window, but two requests a moment ago
    assert ask(user, 179.0)[0] is True  # most of the last minute is the new window by now


def test_a_refused_request_is_not_counted_and_retry_after_is_when_one_fits(per_minute, user):
    per_minute(3)
    assert all(ask(user, 60.0 + i)[0] for i in range(3))
    allowed, refused = ask(user, 70.0)
    assert not allowed
    for _ in range(5):  # hammering while refused does not push the wait further out
        assert not ask(user, 70.0)[0]
    wait = refused.wait()
    assert wait >= 1
    assert ask(user, 70.0 + wait - 1)[0] is False
    assert ask(user, 70.0 + wait)[0] is True


def test_web_processes_share_one_counter_per_window(per_minute, user):
    per_minute(1000)
    for i in range(1000):
        assert ask(user, 600.0 + i / 100)[0]
    assert not ask(user, 610.0)[0]
    # One small counter per window, not the time of every request read and written whole.
    assert cache.get(f"throttle_user_{user.pk}:10") == 1000
