"""The proof of a tool's rate limit: a real MCP server over streamable HTTP that logs every
call it receives, 100 missions calling its tool limited to 10/s on real worker processes.
The server's own log must show at most 10 calls in any second, and every call exactly once."""

import itertools
import json
import subprocess
import sys
import uuid

import pytest
from django.conf import settings as django_settings

from missions.models import Mission
from missions.services import mission_start
from observations.models import Observation
from tests import missions_for_rate_limits  # noqa: F401  (registers its mission types)
from tests.support.network import free_port
from tests.support.processes import ROOT, eventually, stop, wait_until_listening

MISSIONS = 100
LIMIT = 10  # calls per second
MODULES = "tests.missions_for_tests,tests.missions_for_rate_limits"
SERVER_COMMAND = [sys.executable, "-m", "tests.support.call_log_server"]
# A few missions on a much stricter limit beside them: on a busy machine the 100 may never
# reach 10 calls a second, these always wait for their slots (and the rail says so).
STRICT_MISSIONS, STRICT_SECONDS = 3, 4


@pytest.fixture
def call_log_server(tmp_path):
    """The logging MCP server on a free loopback port: its URL and its log file."""
    port, log = free_port(), tmp_path / "calls.jsonl"
    output = tmp_path / "server.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [*SERVER_COMMAND, "--port", str(port), "--log", str(log)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, output)
        yield f"http://127.0.0.1:{port}/mcp", log
    finally:
        stop(process)


def most_calls_in_any_second(times: list[float]) -> int:
    """The largest number of calls inside any window [t, t + 1 s) that starts at a call."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_the_window_count_is_over_any_second_not_calendar_seconds():
    assert most_calls_in_any_second([0.5, 0.9, 1.1, 1.4]) == 4
    assert most_calls_in_any_second([0.0, 1.0, 2.0]) == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_tool_limited_to_10_per_second_called_by_100_missions(
    call_log_server, processes, settings
):
    url, log = call_log_server
    run = uuid.uuid4().hex[:8]  # fresh limiter keys for this run
    name, strict = f"calls-{run}", f"strict-{run}"
    servers = {
        name: {"transport": "http", "url": url, "tool_rate_limits": {"record_call": "10/s"}},
        strict: {"transport": "http", "url": url, "rate_limit": f"1/{STRICT_SECONDS}s"},
    }
    # Production: the broker's Redis, a database of its own; embedded: the database.
    limiter = (
        django_settings.BROKER_URL.rsplit("/", 1)[0] + "/6"
        if django_settings.BROKER_URL.startswith("redis://")
        else "database"
    )
    settings.STUDIOX_MCP_SERVERS = servers
    settings.STUDIOX_RATE_LIMIT_URL = limiter
    env = {
        "STUDIOX_MISSION_MODULES": MODULES,
        "STUDIOX_MCP_SERVERS": json.dumps(servers),
        "STUDIOX_RATE_LIMIT_URL": limiter,
    }
    workers = [processes.worker(f"w{n}", **env) for n in range(2)]
    for worker in workers:
        processes.worker_ready(worker)
    processes.scheduler(**env)

    def start(server: str, item: int):
        return mission_start(type="test_rate_limited_tool", input={"server": server, "item": item})

    strict_ids = [start(strict, MISSIONS + n).mission.id for n in range(STRICT_MISSIONS)]
    ids = [start(name, item).mission.id for item in range(MISSIONS)]

    def all_finished() -> bool:
        done = Mission.objects.filter(id__in=ids + strict_ids, status="succeeded")
        return done.count() == MISSIONS + STRICT_MISSIONS

    eventually(all_finished, what="every mission to succeed", attempts=1800)

    calls = [json.loads(line) for line in log.read_text().splitlines()]
    keys = sorted(call["key"] for call in calls)
    # Every call exactly once, as the server saw them.
    assert keys == sorted(f"{mission_id}:record" for mission_id in ids + strict_ids)
    proof = [call["at"] for call in calls if call["item"] < MISSIONS]
    peak = most_calls_in_any_second(proof)
    print(f"{len(proof)} calls in {max(proof) - min(proof):.1f} s, at most {peak} in any second")
    assert peak <= LIMIT
    strict_calls = sorted(call["at"] for call in calls if call["item"] >= MISSIONS)
    gaps = [later - earlier for earlier, later in itertools.pairwise(strict_calls)]
    assert min(gaps) >= STRICT_SECONDS
    # The strict ones were held back, and the rail said why.
    waited = Observation.objects.filter(
        mission_id__in=strict_ids,
        kind="waiting",
        message__startswith=f"Waiting for the {strict} API's rate limit (1/{STRICT_SECONDS}s)",
    )
    assert waited.count() == STRICT_MISSIONS - 1
