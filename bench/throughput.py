"""Steps per second with two real worker processes on PostgreSQL + Redis (SPEC §11).

Starts two Celery workers (solo pool, one process each), runs MISSIONS missions of STEPS no-op
steps, and prints steps/s once per mode: one step per task (each step a broker round trip),
and with a time slice (a task carries on in-process, each step still its own checkpoint).
Peers on this kind of machine (SPEC §11): DBOS 300–360 steps/s, LangGraph 500–620 nodes/s.
"""

import os
import subprocess
import sys
import time

from bench.common import ROOT, setup_django

MISSIONS, STEPS = 40, 50


def start_workers(env: dict[str, str]) -> list[subprocess.Popen]:
    from django.conf import settings

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "studiox",
                "worker",
                "-Q",
                queue,
                "--pool=solo",
                "-n",
                f"bench{i}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]


def run_mode(label: str, time_slice_ms: int) -> float:
    from missions.models import Mission
    from missions.services import mission_start

    env = {**os.environ, "STUDIOX_TIME_SLICE_MS": str(time_slice_ms)}
    workers = start_workers(env)
    try:
        time.sleep(3)  # let both workers connect before the clock starts
        started = time.perf_counter()
        ids = [
            mission_start(type="bench_noop", input={"steps": STEPS}).mission.id
            for _ in range(MISSIONS)
        ]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if Mission.objects.filter(id__in=ids, status="succeeded").count() == len(ids):
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        done = Mission.objects.filter(id__in=ids, status="succeeded").count()
        rate = done * STEPS / elapsed
        print(
            f"{label}: {done}/{len(ids)} missions, {done * STEPS} steps in {elapsed:.2f} s "
            f"= {rate:.0f} steps/s"
        )
        Mission.objects.filter(id__in=ids).delete()
        return rate
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def main() -> None:
    setup_django()
    one = run_mode("one step per task", 0)
    sliced = run_mode("time slice 50 ms", 50)
    print("peers (SPEC §11, same kind of machine): DBOS 300-360 steps/s, LangGraph 500-620 nodes/s")
    print(f"best: {max(one, sliced):.0f} steps/s")


if __name__ == "__main__":
    main()
