"""A concurrency limit with real workers on PostgreSQL + Redis: 200 missions of a type limited
to 5 at once, three worker processes and the scheduler, one worker killed with SIGKILL
midway. The number of missions holding a slot is sampled from the database throughout."""

import threading

import pytest
from django.db import connection

from missions.models import Mission
from missions.services import mission_start
from tests import missions_for_concurrency
from tests.support.processes import eventually

pytestmark = [
    pytest.mark.production,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
]

MISSIONS = 200
LIMIT = missions_for_concurrency.LIMIT
MODULES = "tests.missions_for_tests,tests.missions_for_concurrency"


class SlotSampler(threading.Thread):
    """Counts, every few milliseconds, the limited missions that hold a slot (any unfinished
    one not queued) and those a worker is running; keeps the largest of each."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.max_holding = self.max_running = self.samples = 0

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.01):
                active = Mission.objects.filter(
                    type="test_limited", status__in=Mission.ACTIVE_STATUSES
                ).exclude(waiting_on=Mission.WaitingOn.QUEUED)
                self.max_holding = max(self.max_holding, active.count())
                self.max_running = max(self.max_running, active.filter(status="running").count())
                self.samples += 1
        finally:
            connection.close()


def test_two_hundred_missions_never_exceed_the_limit_even_when_a_worker_dies(processes):
    def start(indexes: range) -> list:
        return [
            mission_start(
                type="test_limited", input={"steps": 1, "pause_ms": 5}, priority=i % 3
            ).mission.id
            for i in indexes
        ]

    # Started before any worker runs, so the limit is reached for certain: 5 hold a slot and
    # the rest queue. The others start while the workers end missions, racing their ends.
    early = start(range(LIMIT * 4))
    holding = Mission.objects.filter(id__in=early).exclude(waiting_on=Mission.WaitingOn.QUEUED)
    assert holding.count() == LIMIT

    sampler = SlotSampler()
    sampler.start()
    workers = [processes.worker(f"w{i}", STUDIOX_MISSION_MODULES=MODULES) for i in range(3)]
    processes.scheduler(STUDIOX_MISSION_MODULES=MODULES)
    for worker in workers:
        processes.worker_ready(worker)
    ids = early + start(range(LIMIT * 4, MISSIONS))
    missions = Mission.objects.filter(id__in=ids)

    def finished(count: int):
        return lambda: missions.filter(status__in=Mission.FINAL_STATUSES).count() >= count

    eventually(finished(MISSIONS // 3), what="a third of the missions to finish", pause=0.05)
    processes.kill(workers[0])  # SIGKILL: its mission keeps its slot until recovered
    eventually(finished(MISSIONS), what="every mission to finish", attempts=1800, pause=0.05)
    sampler.stopping.set()
    sampler.join()

    assert missions.filter(status="succeeded").count() == MISSIONS
    assert sampler.samples > 100
    assert sampler.max_holding == LIMIT  # the sampler saw the limit reached...
    assert sampler.max_running <= LIMIT  # ...and never passed
    assert not Mission.objects.filter(waiting_on=Mission.WaitingOn.QUEUED).exists()
