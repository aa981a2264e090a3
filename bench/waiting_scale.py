"""100,000 waiting missions (SPEC §11): no broker message held for them, no worker memory
growth, and the Decision Queue's first page and the API list stay fast (p95 ≤ 100 ms).

Creates the missions as rows (each waiting on a supervisor decision, as the engine leaves
them), then measures in-process with Django's test client: GET /decisions/ as a supervisor
and GET /api/missions/ as an operator, each 50 times. Then starts a real worker, lets the
scheduler tick run over the waiting rows, and compares the worker's memory before and after.
"""

import os
import subprocess
import sys
import time
import uuid

from bench.common import ROOT, percentile_ms, setup_django

WAITING = int(os.environ.get("BENCH_WAITING", "100000"))
ROUNDS = 50


def create_waiting(count: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from decisions.models import Decision
    from missions.models import Mission

    role, _ = Group.objects.get_or_create(name="supervisor")
    requester, _ = User.objects.get_or_create(username="bench-requester")
    now = timezone.now()
    for start in range(0, count, 5000):
        missions = [
            Mission(
                id=uuid.uuid4(),
                type="bench_wait",
                version=1,
                title="Waits for a decision",
                input={"key": f"k{i}"},
                status="waiting",
                started_by=requester,
                current_step="approval",
                waiting_on="decision",
                waiting_since=now,
                waiting_detail="supervisor decision: bench",
                step_count=1,
            )
            for i in range(start, min(count, start + 5000))
        ]
        Mission.objects.bulk_create(missions)
        Decision.objects.bulk_create(
            Decision(
                mission=m,
                step_name="approval",
                title=f"Bench decision {m.input['key']}",
                role=role,
                options=["approved", "rejected"],
            )
            for m in missions
        )


def timed_get(client, path: str) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return samples


def worker_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def cleanup() -> None:
    from decisions.models import Decision
    from missions.models import Mission

    mine = {"mission__type": "bench_wait", "mission__started_by__username": "bench-requester"}
    Decision.objects.filter(**mine).delete()
    Mission.objects.filter(type="bench_wait", started_by__username="bench-requester").delete()


def main() -> None:
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from missions.services import missions_tick

    cleanup()
    started = time.perf_counter()
    create_waiting(WAITING)
    print(f"created {WAITING} waiting missions in {time.perf_counter() - started:.1f} s")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum would soon give
            cursor.execute("ANALYZE missions_mission; ANALYZE decisions_decision")
    supervisor, _ = User.objects.get_or_create(username="bench-supervisor")
    supervisor.groups.add(Group.objects.get(name="supervisor"))
    operator, _ = User.objects.get_or_create(
        username="bench-operator", defaults={"is_superuser": True}
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(supervisor)
    queue = timed_get(client, "/decisions/")
    client.force_login(operator)
    api = timed_get(client, "/api/missions/")
    print(f"decision queue first page: p95 {percentile_ms(queue, 95):.1f} ms (target <= 100 ms)")
    print(f"API mission list first page: p95 {percentile_ms(api, 95):.1f} ms (target <= 100 ms)")

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "studiox",
            "worker",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--pool=solo",
            "-n",
            "scale@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)
        before = worker_rss_kb(worker.pid)
        for _ in range(20):
            missions_tick()
        time.sleep(2)
        after = worker_rss_kb(worker.pid)
        print(f"worker memory: {before} kB before, {after} kB after 20 scheduler ticks")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    if settings.BROKER_URL.startswith("redis://"):
        import redis

        broker = redis.Redis.from_url(settings.BROKER_URL)
        held = broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE) + broker.hlen("unacked")
        print(f"broker messages held: {held} (target 0 for waiting missions)")
    cleanup()


if __name__ == "__main__":
    main()
