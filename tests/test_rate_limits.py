"""Rate limits on MCP tools and the LLM provider (integrations.ratelimit): the rate syntax,
the sliding window on both backends and across threads, and what the engine does over a
limit (the step waits for its slot, as a due time, and the rail says why)."""

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone
from django.utils.html import escape

from integrations import ratelimit
from integrations.mcp_client.admin import McpServerForm
from integrations.models import RateLimitWindow
from missions.models import Mission
from missions.selectors import missions_stuck
from missions.services import mission_start, missions_tick
from observations.models import Observation
from observations.templatetags.rail import waiting_label
from tests import missions_for_rate_limits  # noqa: F401  (registers its mission types)
from tests.support.engine import drain, make_due
from tests.test_llm_openai import chat_reply

REDIS_URL = "redis://127.0.0.1:6379/6"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    """Each test below runs on the database backend and on Redis (DB 6, when reachable)."""
    if request.param == "redis":
        url = django_settings.BROKER_URL
        if not url.startswith("redis://"):
            if not redis_available():
                pytest.skip("needs Redis")
            url = REDIS_URL
        settings.STUDIOX_RATE_LIMIT_URL = url.rsplit("/", 1)[0] + "/6"
    else:
        settings.STUDIOX_RATE_LIMIT_URL = "database"
    return request.param


# --- the syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "seconds"),
    [("20/s", 20, 1), ("1000/h", 1000, 3600), ("50/min", 50, 60), ("10/second", 10, 1)],
)
def test_a_rate_is_calls_per_period(text, limit, seconds):
    assert ratelimit.parse(text) == ratelimit.Rate(limit=limit, seconds=seconds)


@pytest.mark.parametrize("text", ["", "20", "x/s", "0/s", "20/fortnight", "5/ms", "-1/s"])
def test_anything_else_is_refused_saying_what_a_rate_looks_like(text):
    with pytest.raises(ValueError, match=r'e\.g\. "20/s"'):
        ratelimit.parse(text)


def test_the_nth_waiter_gets_the_nth_slot_to_come_free():
    window, full = 1000, [(0, 1), (100, 1), (200, 1)]

    def slot(rank):
        return ratelimit._decide(full, rank=rank, now=300, window=window, limit=3, weight=1)

    assert ratelimit._decide(full[:2], rank=0, now=300, window=window, limit=3, weight=1) is None
    assert [slot(rank) for rank in range(5)] == [1000, 1100, 1200, 2000, 2100]


# --- the sliding window, on both backends -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_full_window_names_the_slot_when_its_oldest_call_leaves_it(backend):
    key, rate = unique("window"), ratelimit.parse("2/2s")
    before = timezone.now()
    assert ratelimit.try_acquire(key, rate) is None
    first_done = timezone.now()
    time.sleep(0.7)  # the second call comes well after the first
    assert ratelimit.try_acquire(key, rate) is None
    slot = ratelimit.try_acquire(key, rate)
    assert slot is not None and before + timedelta(seconds=2) <= slot
    assert slot <= first_done + timedelta(seconds=2)  # when the FIRST call leaves the window
    assert ratelimit.try_acquire(key, rate, record=False) == slot  # a check records nothing

    while timezone.now() < slot:
        time.sleep(0.02)
    assert ratelimit.try_acquire(key, rate) is None  # the first call left the window...
    assert ratelimit.try_acquire(key, rate) is not None  # ...the second has not: no burst


@pytest.mark.django_db(transaction=True)
def test_waiters_queue_for_successive_slots(backend):
    key, rate = unique("queue"), ratelimit.parse("2/min")
    assert ratelimit.try_acquire(key, rate) is None
    assert ratelimit.try_acquire(key, rate) is None
    first = ratelimit.try_acquire(key, rate, waiter="a")
    second = ratelimit.try_acquire(key, rate, waiter="b")
    third = ratelimit.try_acquire(key, rate, waiter="c")
    assert first < second < third  # b's slot is the second call's, c's one window later
    assert ratelimit.try_acquire(key, rate, waiter="a") == first  # a keeps its place


@pytest.mark.django_db(transaction=True)
def test_two_threads_on_one_key_get_exactly_the_limit_between_them(backend):
    key, rate = unique("race"), ratelimit.parse("7/min")
    granted: list[int] = []
    start = threading.Barrier(2)

    def hammer() -> None:
        try:
            start.wait()
            mine = sum(ratelimit.try_acquire(key, rate) is None for _ in range(15))
            granted.append(mine)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 7


@pytest.mark.django_db(transaction=True)
def test_a_held_call_counts_until_it_is_released_then_for_a_window(backend):
    key, rate = unique("hold"), ratelimit.parse("1/2s")
    hold = ratelimit.try_hold(key, rate, hold_seconds=30)
    assert isinstance(hold, ratelimit.Hold)
    time.sleep(2.2)  # longer than the window: a call that was not held has left it by now
    assert ratelimit.try_acquire(key, rate, record=False) is not None

    released = timezone.now()
    ratelimit.release(hold)
    assert ratelimit.try_acquire(key, rate, record=False) >= released + timedelta(seconds=2)


@pytest.mark.django_db(transaction=True)
def test_usage_recorded_after_a_call_counts_against_the_window(backend):
    key, rate = unique("tokens"), ratelimit.Rate(limit=1000, seconds=60)
    assert ratelimit.try_acquire(key, rate, weight=100) is None
    ratelimit.record_usage(key, rate, weight=850)  # the call used 950 in all
    assert ratelimit.try_acquire(key, rate, weight=100) is not None
    assert ratelimit.try_acquire(key, rate, weight=50) is None


# --- configuration -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_refuses_a_rate_it_cannot_read():
    form = McpServerForm(
        data={
            "name": "payments",
            "transport": "http",
            "url": "http://127.0.0.1:9/mcp",
            "timeout_seconds": 30,
            "command": "[]",
            "env": "{}",
            "rate_limit": "lots",
            "tool_rate_limits": json.dumps({"issue_refund": "10 per second"}),
            "enabled": True,
        }
    )
    assert not form.is_valid()
    assert "is not a rate" in form.errors["rate_limit"][0]
    assert form.errors["tool_rate_limits"][0].startswith("issue_refund: '10 per second'")


# --- the engine --------------------------------------------------------------------------


@pytest.fixture
def limited_server(settings, backend):
    """An MCP server known only from settings, whose `record_call` is limited to 1/min: no
    process behind it, as a call over the limit never reaches the server."""
    name = unique("payments")
    settings.STUDIOX_MCP_SERVERS = {
        name: {
            "transport": "http",
            "url": "http://127.0.0.1:9/mcp",
            "tool_rate_limits": {"record_call": "1/min"},
        }
    }
    ratelimit.try_acquire(f"mcp:{name}:record_call", ratelimit.parse("1/min"))  # now full
    return name


@pytest.mark.django_db(transaction=True)
def test_a_tool_call_over_its_limit_waits_for_its_slot_and_says_so(
    limited_server, client, admin_user
):
    mission = drain(
        mission_start(type="test_rate_limited_tool", input={"server": limited_server}).mission
    )

    assert (mission.status, mission.waiting_on) == ("waiting", "rate_limit")
    slot = mission.wake_at
    assert timezone.now() < slot <= timezone.now() + timedelta(minutes=1)
    expected = f"the {limited_server} API's rate limit (record_call, 1/min), next slot"
    assert mission.waiting_detail == f"{expected} {slot:%H:%M:%S} UTC"
    step = mission.steps.get(name="record")
    assert (step.status, step.attempts, step.wait["until"]) == ("waiting", 0, slot.isoformat())
    lines = Observation.objects.filter(mission=mission, kind="waiting")
    assert [line.message for line in lines] == [f"Waiting for {mission.waiting_detail}"]
    # The mission's page and the rail say what it waits for, in those words.
    shown = mission.waiting_detail[:1].upper() + mission.waiting_detail[1:]
    assert waiting_label(mission) == shown
    client.force_login(admin_user)
    assert escape(shown) in client.get(f"/missions/{mission.id}/").content.decode()

    # Woken (here before its slot, as by an early message): it asks again and waits again,
    # without a second line on the rail.
    make_due(mission)
    assert missions_tick()["woken"] == 1
    mission = drain(mission)
    assert (mission.status, mission.waiting_on) == ("waiting", "rate_limit")
    assert lines.count() == 1


@pytest.mark.django_db(transaction=True)
def test_missions_stuck_names_the_limit_a_long_wait_is_behind(limited_server):
    mission = drain(
        mission_start(type="test_rate_limited_tool", input={"server": limited_server}).mission
    )
    assert missions_stuck() == []  # a short wait for a slot is not stuck
    Mission.objects.filter(id=mission.id).update(
        waiting_since=timezone.now() - timedelta(minutes=10)
    )

    [(listed, reason)] = missions_stuck()
    assert listed.id == mission.id
    assert reason.startswith("rate-limited in 'record' for 10 min: waiting for the ")
    assert "API's rate limit (record_call, 1/min)" in reason


@pytest.fixture
def model(settings, llm_server, backend):
    settings.STUDIOX_LLM_PROVIDER = "openai"
    settings.STUDIOX_LLM_MODEL = "local-model"
    settings.STUDIOX_LLM_BASE_URL = f"{llm_server.url}/v1"
    settings.STUDIOX_LLM_API_KEY = "sk-test-secret-key-123456"
    settings.STUDIOX_LLM_TIMEOUT_SECONDS = 5.0
    # A provider name of its own per test: the limiter's keys are per provider.
    provider = unique("openai")
    from integrations import llm

    settings.STUDIOX_LLM_PROVIDER = provider
    llm.PROVIDERS[provider] = llm.PROVIDERS["openai"]
    yield llm_server
    del llm.PROVIDERS[provider]


def ask(question: str = "Refund?") -> Mission:
    return drain(mission_start(type="test_llm", input={"question": question}).mission)


@pytest.mark.django_db(transaction=True)
def test_a_recorded_llm_step_never_asks_the_limiter_again(model, settings):
    settings.STUDIOX_LLM_RATE_LIMIT = "1/min"
    model.reply(chat_reply(json.dumps({"answer": "yes"})))
    mission = ask()  # replayed after each later step, with the window still full

    assert (mission.status, len(model.received)) == ("succeeded", 1)

    waiting = ask()
    assert (waiting.status, waiting.waiting_on) == ("waiting", "rate_limit")
    assert waiting.waiting_detail.startswith(
        f"the language model's rate limit ({settings.STUDIOX_LLM_PROVIDER}, 1/min), next slot"
    )
    assert len(model.received) == 1


@pytest.mark.django_db(transaction=True)
def test_tokens_per_minute_count_what_the_calls_really_used(model, settings):
    settings.STUDIOX_LLM_TOKENS_PER_MINUTE = 2000
    settings.STUDIOX_LLM_MAX_TOKENS = 100
    model.reply(chat_reply(json.dumps({"answer": "a"}), prompt_tokens=1900, completion_tokens=5))
    assert ask().status == "succeeded"

    waiting = ask()  # 1905 used this minute: the next call's ~100 would not fit
    assert waiting.waiting_on == "rate_limit"
    assert "token limit" in waiting.waiting_detail and "2000 tokens/min" in waiting.waiting_detail
    assert len(model.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_providers_429_with_retry_after_still_pauses_the_step(model, settings):
    settings.STUDIOX_LLM_RATE_LIMIT = "100/min"  # a limit of our own, not reached
    model.reply({"error": "slow down"}, status=429, headers={"retry-after": "120"})
    model.reply(chat_reply(json.dumps({"answer": "later"})))
    mission = ask()

    assert (mission.status, mission.waiting_on) == ("waiting", "retry")
    assert mission.wake_at >= timezone.now() + timedelta(seconds=100)
    make_due(mission)
    assert missions_tick()["woken"] == 1
    assert drain(mission).verdict["answer"] == "later"


@pytest.mark.django_db(transaction=True)
def test_the_database_backend_keeps_a_row_per_key(settings):
    settings.STUDIOX_RATE_LIMIT_URL = "database"
    key = unique("row")
    ratelimit.try_acquire(key, ratelimit.parse("5/s"))
    row = RateLimitWindow.objects.get(key=key)
    assert len(row.calls) == 1 and str(row).startswith(f"{key}: 1 call(s) in the window")
