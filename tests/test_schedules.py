"""Recurring missions: fire times in a time zone, validation, catch-up after downtime, and
exactly one mission per fire time whatever ticks race or crash."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pydantic import BaseModel

from missions import runtime
from missions.models import Mission
from missions.runtime import mission, schedule_problem
from schedules import services
from schedules.cron import due_fire_times, next_fire_times
from schedules.models import Schedule, ScheduleFire
from schedules.services import (
    schedule_save,
    schedule_set_enabled,
    schedules_sync_code,
    schedules_tick,
)
from studiox.celery import app

T0 = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PARIS = "Europe/Paris"


def hourly(*, catch_up: str = "once", **fields) -> Schedule:
    """An hourly schedule of the counting mission that has handled everything up to T0."""
    values = {
        "name": "hourly",
        "mission_type": "test_count",
        "cron": "0 * * * *",
        "input": {"steps": 1},
        "catch_up": catch_up,
        **fields,
    }
    return schedule_save(schedule=Schedule(**values), now=T0)


def missions_of(schedule: Schedule) -> list[Mission]:
    return list(
        Mission.objects.filter(idempotency_key__startswith=f"schedule:{schedule.pk}:").order_by(
            "created_at"
        )
    )


def fire_times(schedule: Schedule) -> list[datetime]:
    return list(schedule.fires.order_by("fire_time").values_list("fire_time", flat=True))


# Fire times in a time zone.


def test_a_morning_schedule_keeps_its_wall_clock_time_across_the_spring_change():
    fires = next_fire_times(
        "0 6 * * *", PARIS, after=datetime(2026, 3, 27, 12, tzinfo=UTC), count=3
    )
    # 06:00 in Paris is 05:00 UTC in winter (CET) and 04:00 UTC from 29 March (CEST).
    assert fires == [
        datetime(2026, 3, 28, 5, tzinfo=UTC),
        datetime(2026, 3, 29, 4, tzinfo=UTC),
        datetime(2026, 3, 30, 4, tzinfo=UTC),
    ]


def test_a_time_the_spring_change_skips_fires_once_after_the_gap():
    fires = next_fire_times(
        "30 2 * * *", PARIS, after=datetime(2026, 3, 28, 12, tzinfo=UTC), count=2
    )
    assert fires == [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)]


def test_a_nightly_batch_runs_once_in_the_hour_the_autumn_change_repeats():
    fires = next_fire_times(
        "30 2 * * *", PARIS, after=datetime(2026, 10, 24, 12, tzinfo=UTC), count=2
    )
    assert fires == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_an_interval_schedule_keeps_its_interval_through_the_repeated_hour():
    after = datetime(2026, 10, 24, 23, 45, tzinfo=UTC)
    fires = next_fire_times("*/30 * * * *", PARIS, after=after, count=5)
    assert [f - after for f in fires] == [timedelta(minutes=15 + 30 * i) for i in range(5)]


def test_due_fire_times_keep_the_newest_and_count_them_all():
    due = due_fire_times("0 * * * *", "UTC", after=T0, until=T0 + 5 * HOUR, keep=2)
    assert due.latest == [T0 + 4 * HOUR, T0 + 5 * HOUR]
    assert due.total == 5


# Validation.


@pytest.mark.parametrize(
    ("cron", "zone", "says"),
    [
        ("61 * * * *", "UTC", "not a valid cron expression"),
        ("0 6 * *", "UTC", "five fields"),
        ("every morning", "UTC", "five fields"),
        ("0 6 * * 1-8", "UTC", "not a valid cron expression"),
        ("0 0 31 2 *", "UTC", "never fires"),
        ("0 6 * * 1-5", "Mars/Olympus", "unknown time zone"),
        ("0 6 * * 1-5", "../../etc/passwd", "unknown time zone"),
    ],
)
def test_a_bad_cron_or_zone_is_refused_with_the_reason(cron, zone, says):
    assert says in schedule_problem(cron, zone)


def test_good_cron_expressions_pass():
    for cron in ("0 6 * * 1-5", "*/5 * * * *", "@daily", "* * * * * */10"):
        assert schedule_problem(cron, PARIS) is None


class Report(BaseModel):
    region: str


@pytest.fixture
def registry(monkeypatch):
    """Missions registered by a test are forgotten after it."""
    copy = {name: dict(versions) for name, versions in runtime._registry.items()}
    monkeypatch.setattr(runtime, "_registry", copy)
    return copy


def test_the_decorator_refuses_a_bad_cron_at_registration(registry):
    with pytest.raises(ValueError, match=r"'nightly_bad'.*not a valid cron expression"):
        mission(
            "nightly_bad", input=Report, schedule="0 25 * * *", schedule_input={"region": "eu"}
        )(lambda ctx, data: {})
    assert "nightly_bad" not in registry


def test_the_decorator_refuses_input_its_mission_would_refuse(registry):
    with pytest.raises(
        ValueError, match="schedule_input is not valid input: region: Field required"
    ):
        mission("nightly_input", input=Report, schedule="0 6 * * *", schedule_input={})(
            lambda ctx, data: {}
        )
    with pytest.raises(ValueError, match="schedule_catch_up must be one of skip, once, all"):
        mission(
            "nightly_policy",
            input=Report,
            schedule="0 6 * * *",
            schedule_input={"region": "eu"},
            schedule_catch_up="sometimes",
        )(lambda ctx, data: {})


# Schedules declared in code.


@pytest.mark.django_db
def test_a_schedule_declared_in_code_becomes_a_row_and_follows_the_code(registry):
    def nightly(ctx, data: Report) -> dict:
        return {"region": data.region}

    declare = {"input": Report, "schedule_input": {"region": "eu"}, "schedule_timezone": PARIS}
    mission("nightly_report", schedule="0 6 * * 1-5", **declare)(nightly)
    schedules_tick(now=T0)
    row = Schedule.objects.get(mission_type="nightly_report")
    assert (row.source, row.cron, row.timezone, row.input) == (
        "code",
        "0 6 * * 1-5",
        PARIS,
        declare["schedule_input"],
    )
    assert row.next_fire_at == datetime(2026, 11, 30, 5, tzinfo=UTC)  # Monday 06:00 CET
    assert row.run_as is None  # started by nobody: the system, like start_mission without --user

    schedule_set_enabled(schedule=row, enabled=False, now=T0)
    mission("nightly_report", version=2, schedule="30 7 * * *", **declare)(nightly)
    assert schedules_sync_code(now=T0) == 1
    row.refresh_from_db()
    assert (row.cron, row.enabled) == ("30 7 * * *", False)  # the operator's switch stays

    del registry["nightly_report"]
    schedule_set_enabled(schedule=row, enabled=True, now=T0)
    schedules_sync_code(now=T0)
    row.refresh_from_db()
    assert not row.enabled  # no longer declared: off, its history kept
    assert Schedule.objects.filter(mission_type="nightly_report").count() == 1


# The admin.


@pytest.mark.django_db
def test_the_admin_refuses_input_the_mission_would_refuse(admin_client):
    form = {
        "name": "nightly count",
        "mission_type": "test_count",
        "cron": "0 2 * * *",
        "timezone": PARIS,
        "input": '{"steps": "many"}',
        "catch_up": "once",
        "run_as": "",
        "enabled": "on",
    }
    response = admin_client.post(reverse("admin:schedules_schedule_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "steps" in " ".join(errors["input"])
    assert not Schedule.objects.exists()

    bad = {**form, "input": '{"steps": 2}', "cron": "0 2 * *", "timezone": "Paris"}
    errors = (
        admin_client.post(reverse("admin:schedules_schedule_add"), bad)
        .context["adminform"]
        .form.errors
    )
    assert "five fields" in " ".join(errors["cron"])
    assert "unknown time zone" in " ".join(errors["timezone"])
    assert "valid JSON" in " ".join(
        admin_client.post(reverse("admin:schedules_schedule_add"), {**form, "input": "{"})
        .context["adminform"]
        .form.errors["input"]
    )

    response = admin_client.post(
        reverse("admin:schedules_schedule_add"), {**form, "input": '{"steps": 2}'}
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.input["steps"] == 2  # stored as validated
    assert schedule.run_as.username == "admin"  # the operator who saved it
    assert schedule.next_fire_at is not None and schedule.source == "admin"


@pytest.mark.django_db
def test_the_admin_shows_next_fire_times_and_last_runs(admin_client):
    schedule = hourly(catch_up="all", timezone=PARIS)
    schedules_tick(now=T0 + 2 * HOUR)
    first, last = missions_of(schedule)
    listing = admin_client.get(reverse("admin:schedules_schedule_changelist")).text
    assert reverse("admin:missions_mission_change", args=[last.id]) in listing
    # The next fire time, in the schedule's zone.
    assert "2026-11-30 04:00:00 CET (03:00:00 UTC)" in listing

    page = admin_client.get(reverse("admin:schedules_schedule_change", args=[schedule.pk])).text
    for hour in range(4, 9):  # the next five fire times, 03:00 to 07:00 UTC
        assert f"2026-11-30 0{hour}:00:00 CET" in page
    assert "2026-11-30 09:00:00 CET" not in page
    assert reverse("admin:missions_mission_change", args=[first.id]) in page
    fires = admin_client.get(reverse("admin:schedules_schedulefire_changelist")).text
    assert str(last.id)[:8] in fires
    assert admin_client.get(reverse("admin:schedules_schedulefire_add")).status_code == 403


@pytest.mark.django_db
def test_the_schedule_list_costs_the_same_queries_for_one_schedule_or_many(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert (
                admin_client.get(reverse("admin:schedules_schedule_changelist")).status_code == 200
            )
        return len(captured)

    hourly(catch_up="all")
    schedules_tick(now=T0 + HOUR)
    one = queries()
    for name in ("second", "third"):
        hourly(catch_up="all", name=name)
    schedules_tick(now=T0 + 2 * HOUR)
    assert queries() == one


@pytest.mark.django_db
def test_the_admin_actions_switch_schedules_off_and_on_from_now(admin_client):
    schedule = hourly(catch_up="all")
    changelist = reverse("admin:schedules_schedule_changelist")
    admin_client.post(changelist, {"action": "disable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
    admin_client.post(changelist, {"action": "enable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.handled_until > T0  # the time it was off is not missed


@pytest.mark.django_db
def test_a_schedule_from_code_is_only_switched_on_and_off_in_the_admin(admin_client):
    schedule = hourly(source=Schedule.Source.CODE)
    url = reverse("admin:schedules_schedule_change", args=[schedule.pk])
    assert 'name="cron"' not in admin_client.get(url).text
    response = admin_client.post(url, {"cron": "* * * * *", "input": "{}"})  # enabled: off
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.input, schedule.enabled) == ("0 * * * *", {"steps": 1}, False)


# Catch-up after downtime: "now" is passed to the tick.


@pytest.mark.django_db
def test_a_tick_on_time_starts_the_mission_of_the_fire_time():
    schedule = hourly(catch_up="skip")
    assert schedules_tick(now=T0 + HOUR - timedelta(seconds=1)).started == 0
    assert schedules_tick(now=T0 + HOUR + timedelta(seconds=2)).started == 1
    (started,) = missions_of(schedule)
    assert (started.type, started.input["steps"], started.started_by) == ("test_count", 1, None)
    assert fire_times(schedule) == [T0 + HOUR]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + 2 * HOUR


@pytest.mark.django_db
def test_skip_starts_nothing_for_the_fire_times_missed_while_down():
    schedule = hourly(catch_up="skip")
    result = schedules_tick(now=T0 + 5 * HOUR + timedelta(minutes=10))
    assert (result.started, result.skipped) == (0, 5)
    schedule.refresh_from_db()
    assert schedule.skipped_count == 5 and missions_of(schedule) == []
    assert schedule.next_fire_at == T0 + 6 * HOUR


@pytest.mark.django_db
def test_once_starts_one_mission_for_the_latest_missed_fire_time():
    schedule = hourly(catch_up="once")
    result = schedules_tick(now=T0 + 5 * HOUR + timedelta(minutes=10))
    assert (result.started, result.skipped) == (1, 4)
    assert fire_times(schedule) == [T0 + 5 * HOUR]
    assert schedule.fires.get().missed == 4
    assert len(missions_of(schedule)) == 1


@pytest.mark.django_db
def test_all_starts_every_missed_fire_time(settings):
    schedule = hourly(catch_up="all")
    assert schedules_tick(now=T0 + 5 * HOUR + timedelta(minutes=10)).started == 5
    assert fire_times(schedule) == [T0 + i * HOUR for i in range(1, 6)]
    assert len(missions_of(schedule)) == 5


@pytest.mark.django_db
def test_all_is_capped_at_the_newest_fire_times_with_a_warning(settings, caplog):
    settings.STUDIOX_SCHEDULE_CATCH_UP_MAX = 3
    schedule = hourly(catch_up="all")
    result = schedules_tick(now=T0 + 5 * HOUR + timedelta(minutes=10))
    assert (result.started, result.skipped) == (3, 2)
    assert fire_times(schedule) == [T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
    assert "5 fire times missed, starting the latest 3 only" in caplog.text


@pytest.mark.django_db
def test_a_schedule_switched_back_on_does_not_catch_up_the_time_it_was_off():
    schedule = hourly(catch_up="all")
    schedule_set_enabled(schedule=schedule, enabled=False, now=T0)
    assert schedules_tick(now=T0 + 3 * HOUR).started == 0
    schedule_set_enabled(schedule=schedule, enabled=True, now=T0 + 3 * HOUR + timedelta(minutes=5))
    assert schedules_tick(now=T0 + 4 * HOUR).started == 1
    assert fire_times(schedule) == [T0 + 4 * HOUR]


@pytest.mark.django_db
def test_a_fire_time_whose_input_the_mission_now_refuses_says_why(caplog):
    schedule = hourly(catch_up="skip")
    Schedule.objects.filter(pk=schedule.pk).update(input={"steps": "many"})  # code changed
    result = schedules_tick(now=T0 + HOUR)
    assert (result.started, result.failed) == (0, 1)
    fire = schedule.fires.get()
    assert fire.mission is None and "steps" in fire.error
    assert schedules_tick(now=T0 + HOUR).failed == 0  # spent: not retried every tick


# Exactly once.


@pytest.mark.django_db
def test_ticking_again_with_the_same_now_starts_nothing_more():
    schedule = hourly(catch_up="all")
    assert schedules_tick(now=T0 + 3 * HOUR).started == 3
    assert schedules_tick(now=T0 + 3 * HOUR).started == 0
    assert len(missions_of(schedule)) == 3


@pytest.mark.django_db
def test_a_fire_another_scheduler_recorded_is_not_started_again():
    schedule = hourly(catch_up="all")
    ScheduleFire.objects.create(schedule=schedule, fire_time=T0 + 2 * HOUR)  # it got there first
    assert schedules_tick(now=T0 + 3 * HOUR).started == 2
    assert len(missions_of(schedule)) == 2


@pytest.mark.django_db
def test_a_crash_between_the_fire_and_the_start_leaves_nothing_behind(monkeypatch):
    schedule = hourly(catch_up="all")
    real_start = services.mission_start

    def start_then_crash(**kwargs):
        real_start(**kwargs)
        raise RuntimeError("the scheduler died here")

    monkeypatch.setattr(services, "mission_start", start_then_crash)
    assert schedules_tick(now=T0 + 2 * HOUR).started == 0
    assert missions_of(schedule) == [] and not ScheduleFire.objects.exists()
    schedule.refresh_from_db()
    assert schedule.handled_until == T0

    monkeypatch.setattr(services, "mission_start", real_start)
    assert schedules_tick(now=T0 + 2 * HOUR).started == 2
    assert [m.idempotency_key for m in missions_of(schedule)] == [
        f"schedule:{schedule.pk}:{(T0 + HOUR).isoformat()}",
        f"schedule:{schedule.pk}:{(T0 + 2 * HOUR).isoformat()}",
    ]


def _in_threads(*targets) -> None:
    errors = []

    def run(target):
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_start_one_mission_per_fire_time():
    schedule = hourly(catch_up="all")
    barrier = threading.Barrier(2)
    results = []

    def tick():
        barrier.wait(timeout=30)
        results.append(schedules_tick(now=T0 + 4 * HOUR))

    _in_threads(tick, tick)
    assert sum(r.started for r in results) == 4
    assert fire_times(schedule) == [T0 + i * HOUR for i in range(1, 5)]
    assert len({m.id for m in missions_of(schedule)}) == len(missions_of(schedule)) == 4


@pytest.mark.django_db(transaction=True)
def test_a_tick_that_meets_a_schedule_being_fired_leaves_it_alone(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite queues the second writer at BEGIN: nothing to overlap")
    schedule = hourly(catch_up="all")
    inside, release = threading.Event(), threading.Event()
    real_start = services.mission_start

    def held_start(**kwargs):
        inside.set()
        release.wait(timeout=60)
        return real_start(**kwargs)

    monkeypatch.setattr(services, "mission_start", held_start)
    first = []

    def tick_first():
        try:
            first.append(schedules_tick(now=T0 + 2 * HOUR))
        finally:
            connection.close()

    worker = threading.Thread(target=tick_first)
    worker.start()
    assert inside.wait(timeout=60)
    second = schedules_tick(now=T0 + 2 * HOUR)  # while the first holds the schedule
    release.set()
    worker.join(timeout=60)
    assert (second.schedules, second.started) == (0, 0)
    assert first[0].started == 2
    assert len(missions_of(schedule)) == 2


@pytest.mark.django_db
def test_the_command_lists_schedules_with_their_next_fire_time(capsys):
    hourly(catch_up="all")
    call_command("schedules")
    out = capsys.readouterr().out
    assert "hourly" in out and "next 2026-11-30 01:00:00 UTC" in out
    assert "1 schedule(s)" in out


def test_beat_runs_the_schedules_tick_as_often_as_the_missions_tick():
    app.loader.import_default_modules()
    app.finalize()
    assert "schedules.tick" in app.tasks
    beat = app.conf.beat_schedule
    assert beat["schedules.tick"]["task"] == "schedules.tick"
    assert beat["schedules.tick"]["schedule"] == beat["missions.tick"]["schedule"]
