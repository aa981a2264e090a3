"""`ctx.map` on real worker processes: kill -9 mid-item, racing last items, max_parallel."""

import signal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from missions.models import MapItem, Mission
from missions.services import mission_start
from tests.support.processes import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def finished(mission: Mission):
    def check():
        mission.refresh_from_db()
        return mission.is_final and mission

    return check


def runs(marker: Path) -> list[str]:
    return [line.split()[1] for line in marker.read_text().splitlines()] if marker.exists() else []


def test_a_worker_killed_during_a_100_item_map_leaves_every_effect_exactly_once(
    processes, tmp_path
):
    marker, block = tmp_path / "runs.log", tmp_path / "block"
    block.touch()
    victim = processes.worker("victim")
    processes.scheduler()
    mission = mission_start(
        type="test_map",
        input={"count": 100, "marker": str(marker), "block_file": str(block), "block_index": 37},
    ).mission
    blocked = f"{mission.id}:check:37"
    eventually(lambda: blocked in runs(marker), what="item 37 to start", attempts=1200)

    processes.kill(victim, signal.SIGKILL)
    block.unlink()
    processes.worker("survivor")
    eventually(finished(mission), what="the verdict after recovery", attempts=1800)

    assert mission.status == "succeeded", (mission.error, processes.logs())
    keys = [f"{mission.id}:check:{i}" for i in range(100)]
    effects = Group.objects.filter(name__startswith=f"{mission.id}:check:")
    assert sorted(name.split("#")[0] for name in effects.values_list("name", flat=True)) == sorted(
        keys
    )  # one committed row per item, the killed one included
    assert runs(marker).count(blocked) == 2  # started twice, committed once
    assert [r["key"] for r in mission.verdict["results"]] == keys
    assert MapItem.objects.get(mission=mission, index=37).attempts == 2


@pytest.mark.production  # on SQLite one write at a time: the two items cannot overlap
def test_two_items_recorded_at_once_wake_the_mission_exactly_once(processes, tmp_path):
    processes.worker("a")
    processes.worker("b")
    for attempt in range(3):
        marker = tmp_path / f"runs-{attempt}.log"
        # Both items wait for each other, then record their results at the same moment.
        mission = mission_start(
            type="test_map", input={"count": 2, "marker": str(marker), "barrier": 2}
        ).mission
        eventually(finished(mission), what="the verdict")
        assert mission.status == "succeeded", (mission.error, processes.logs())
        woken = mission.observations.filter(kind="resumed", step_name="check")
        assert woken.count() == 1
        assert mission.steps.get(name="after").attempts == 1
        pids = {line.split("pid=")[1] for line in marker.read_text().splitlines()}
        assert len(pids) == 2  # the two items ran side by side on the two workers


def test_max_parallel_holds_on_two_workers(processes):
    processes.worker("a")
    processes.worker("b")
    mission = mission_start(type="test_map", input={"count": 6, "max_parallel": 1}).mission
    eventually(finished(mission), what="the verdict")
    assert mission.status == "succeeded", (mission.error, processes.logs())
    results = mission.verdict["results"]
    assert max(r["running"] for r in results) == 1
    assert max(r["holding"] for r in results) == 1
