"""A child's end → its parent's next step started, on PostgreSQL + Redis with real workers
(SPEC: "decision, event or child end → next step started", median ≤ 10 ms, p99 ≤ 50 ms),
beside a decision's wake-up measured the same way.

Each child sample: a parent waits (ctx.wait_for_missions) for its child, which waits for an
event; the event is delivered, the child finishes; the sample is from the child's final
write (its `finished_at`) to the start of the parent's step after the wait (that step row's
`started_at`; both stamped by workers on the same host clock). Each decision sample: from
`decided_at` to the start of the step after the wait. One sample at a time, on an idle stack.

The stack is bench.production's (its helpers, settings and `celery worker --concurrency 2` +
beat) on a database and Redis databases of its own. Run from the project root:
`.venv/bin/python -m bench.child_wake`. Sizes (environment): BENCH_SAMPLES (50).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import production
from bench.common import median_ms, percentile_ms

SAMPLES = int(os.environ.get("BENCH_SAMPLES", 50))
# Not bench.production's database and Redis databases: both can run on one machine.
production.DATABASE = "studiox_benchchildwake"
production.BROKER_DB, production.CHANNEL_LAYER_DB = 4, 5


def wait_for(check, *, what: str, stack: production.Stack, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        stack.check_alive()
        # The figures are read from rows the workers stamp: polling slowly costs the sample
        # nothing and leaves the cores to the workers and the database.
        time.sleep(0.01)
    raise RuntimeError(f"gave up waiting for {what}:\n{stack.logs()}")


def step_started(mission_id, name: str):
    from missions.models import Step

    return (
        Step.objects.filter(mission_id=mission_id, name=name)
        .values_list("started_at", flat=True)
        .first()
    )


def all_waiting(ids: list, on: str) -> bool:
    from missions.models import Mission

    return Mission.objects.filter(id__in=ids, status="waiting", waiting_on=on).count() == len(ids)


def child_samples(stack: production.Stack) -> list[float]:
    from missions.models import Mission
    from missions.services import event_deliver, mission_start

    parents = [
        mission_start(type="bench_parent", input={"key": f"child-{i}"}).mission
        for i in range(SAMPLES)
    ]
    ids = [parent.id for parent in parents]
    wait_for(lambda: all_waiting(ids, "missions"), what="parents waiting", stack=stack)
    children = Mission.objects.filter(parent_id__in=ids)
    wait_for(
        lambda: all_waiting(list(children.values_list("id", flat=True)), "event"),
        what="children waiting",
        stack=stack,
    )
    samples = []
    for i, parent in enumerate(parents):
        event_deliver(event="bench.go", key=f"child-{i}")
        started = wait_for(
            lambda parent=parent: step_started(parent.id, "after"), what="a parent", stack=stack
        )
        ended = Mission.objects.get(parent_id=parent.id).finished_at
        samples.append((started - ended).total_seconds())
    return samples


def decision_samples(stack: production.Stack) -> list[float]:
    from django.contrib.auth.models import Group, User

    from decisions.models import Decision
    from decisions.services import decision_decide
    from missions.services import mission_start

    approver = User.objects.create_user("bench-approver")
    approver.groups.add(Group.objects.get_or_create(name="bench_approver")[0])
    missions = [
        mission_start(type="bench_decide", input={"key": f"decision-{i}"}).mission
        for i in range(SAMPLES)
    ]
    ids = [mission.id for mission in missions]
    wait_for(lambda: all_waiting(ids, "decision"), what="decisions waiting", stack=stack)
    samples = []
    for mission in missions:
        decision = decision_decide(
            decision=Decision.objects.get(mission=mission), user=approver, outcome="approved"
        )
        started = wait_for(
            lambda mission=mission: step_started(mission.id, "after"),
            what="a decided mission",
            stack=stack,
        )
        samples.append((started - decision.decided_at).total_seconds())
    return samples


def report(label: str, samples: list[float]) -> None:
    print(
        f"{label}: median {median_ms(samples):.2f} ms, p95 {percentile_ms(samples, 95):.2f} ms, "
        f"p99 {percentile_ms(samples, 99):.2f} ms, max {max(samples) * 1000:.2f} ms "
        f"({len(samples)} samples)"
    )


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="studiox-childwake-"))
    env = production.studiox_environment(scratch / "var")
    os.environ.update(env)  # this process starts missions and reads rows with the same settings
    stack = production.Stack(env, scratch)
    try:
        production.fresh_database_and_django(env)
        worker = ["celery", "-A", "studiox", "worker", "-Q", production.QUEUE]
        stack.spawn("worker", [*worker, "--concurrency", "2"])
        stack.spawn("beat", ["celery", "-A", "studiox", "beat"])
        children = child_samples(stack)
        decisions = decision_samples(stack)
        report("child end -> parent's next step started", children)
        report("decision -> next step started        ", decisions)
        gap = statistics.median(children) - statistics.median(decisions)
        print(f"difference of medians: {gap * 1000:+.2f} ms")
        print("target: median <= 10 ms, p99 <= 50 ms")
    finally:
        stack.stop()
        production.flush_redis()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
