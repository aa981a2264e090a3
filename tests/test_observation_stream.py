"""ws/missions/<uuid>/ and ws/rail/: who may listen, catching up, live pushes, polling."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from observations.consumers import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
)
from observations.models import Observation
from tests.support.pages import session_cookie
from tests.support.rail import (  # noqa: F401 - an autouse fixture
    TIMEOUT,
    arecord,
    expect_closed,
    expect_ready,
    frames_until,
    mission_for,
    reader,
    readers_let_go_of_the_database,
    record,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_refuses_an_anonymous_reader(requester):
    mission = mission_for(requester)

    async def body():
        for path in ("/ws/rail/", f"/ws/missions/{mission.id}/"):
            communicator = reader(path)
            assert await expect_closed(communicator) == CLOSE_UNAUTHENTICATED
            await communicator.disconnect()

    run(body)


def test_it_refuses_another_users_mission(requester, outsider):
    mission = mission_for(requester)
    cookie = session_cookie(outsider)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/", cookie)
        assert await expect_closed(communicator) == CLOSE_FORBIDDEN
        await communicator.disconnect()

    run(body)


def test_it_refuses_a_mission_that_does_not_exist(admin_user):
    cookie = session_cookie(admin_user)

    async def body():
        communicator = reader(f"/ws/missions/{uuid.uuid4()}/", cookie)
        assert await expect_closed(communicator) == CLOSE_FORBIDDEN
        await communicator.disconnect()

    run(body)


def test_it_catches_up_from_the_readers_last_sequence_number(requester, slow_polls):
    mission = mission_for(requester)
    first = record(mission, "Order retrieved")
    second = record(mission, "Policy checked")
    third = record(mission, "Refund issued")
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/?after={first.seq}", cookie)
        assert await expect_ready(communicator) == first.seq
        received = await frames_until(communicator, lambda p: p["seq"] == third.seq)
        await communicator.disconnect()
        return received

    received = run(body)
    assert [p["seq"] for p in received] == [second.seq, third.seq]
    assert [p["message"] for p in received] == ["Policy checked", "Refund issued"]
    assert received[0]["mission_title"] == "Counting"


def test_a_reader_that_reconnects_gets_what_it_missed_and_nothing_twice(requester, slow_polls):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/?after=0", cookie)
        await expect_ready(communicator)
        seen = await arecord(mission, "Step one done")
        await frames_until(communicator, lambda p: p["seq"] == seen.seq)
        await communicator.disconnect()
        missed = [await arecord(mission, f"Step {n} done") for n in ("two", "three")]
        again = reader(f"/ws/missions/{mission.id}/?after={seen.seq}", cookie)
        await expect_ready(again)
        received = await frames_until(again, lambda p: p["seq"] == missed[-1].seq)
        await again.disconnect()
        return [p["seq"] for p in received], [o.seq for o in missed]

    received, missed = run(body)
    assert received == missed


def test_a_live_observation_is_pushed_once_it_commits(requester, slow_polls):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/", cookie)
        await expect_ready(communicator)
        observation = await arecord(mission, "Waiting for a supervisor", kind="waiting")
        received = await frames_until(communicator, lambda p: p["seq"] == observation.seq)
        await communicator.disconnect()
        return received

    [payload] = run(body)
    assert payload["kind"] == "waiting"
    assert payload["message"] == "Waiting for a supervisor"
    assert payload["mission_id"] == str(mission.id)


def test_a_row_nobody_pushed_still_arrives_from_the_database(requester, fast_polls):
    mission = mission_for(requester)
    cookie = session_cookie(requester)
    write_quietly = database_sync_to_async(Observation.objects.create)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/", cookie)
        await expect_ready(communicator)
        row = await write_quietly(
            mission=mission, kind="note", message="Written by another process"
        )
        received = await frames_until(communicator, lambda p: p["seq"] == row.seq)
        await communicator.disconnect()
        return received

    [payload] = run(body)
    assert payload["message"] == "Written by another process"


def test_a_pushed_and_polled_observation_is_sent_once(requester, fast_polls):
    mission = mission_for(requester)
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/", cookie)
        await expect_ready(communicator)
        first = await arecord(mission, "First")
        received = await frames_until(communicator, lambda p: p["seq"] == first.seq)
        second = await arecord(mission, "Second")
        received += await frames_until(communicator, lambda p: p["seq"] == second.seq)
        await communicator.disconnect()
        return [p["message"] for p in received]

    assert run(body) == ["First", "Second"]


def test_the_mission_stream_carries_only_its_own_mission(requester):
    mine, other = mission_for(requester), mission_for(requester, title="Other")
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mine.id}/", cookie)
        await expect_ready(communicator)
        await arecord(other, "Not for this page")
        last = await arecord(mine, "For this page")
        received = await frames_until(communicator, lambda p: p["seq"] == last.seq)
        await communicator.disconnect()
        return received

    assert [p["message"] for p in run(body)] == ["For this page"]


def test_the_rail_shows_a_reader_only_the_missions_they_may_see(requester, outsider, admin_user):
    theirs, mine = mission_for(requester), mission_for(outsider, title="Outsider's")
    cookies = {u.username: session_cookie(u) for u in (outsider, admin_user)}

    async def body():
        outsider_rail = reader("/ws/rail/", cookies["outsider"])
        admin_rail = reader("/ws/rail/", cookies["admin"])
        await expect_ready(outsider_rail)
        await expect_ready(admin_rail)
        hidden = await arecord(theirs, "Requester's refund approved")
        shown = await arecord(mine, "Outsider's report drafted")
        outsider_got = await frames_until(outsider_rail, lambda p: p["seq"] == shown.seq)
        admin_got = await frames_until(admin_rail, lambda p: p["seq"] == shown.seq)
        await outsider_rail.disconnect()
        await admin_rail.disconnect()
        return hidden.seq, outsider_got, admin_got

    hidden, outsider_got, admin_got = run(body)
    assert hidden not in [p["seq"] for p in outsider_got]
    assert [p["message"] for p in outsider_got] == ["Outsider's report drafted"]
    assert hidden in [p["seq"] for p in admin_got]
    assert {p["mission_title"] for p in admin_got} == {"Counting", "Outsider's"}


@pytest.mark.production  # SQLite commits writers one at a time, in sequence order
def test_a_late_commit_behind_the_cursor_still_reaches_the_reader(requester, fast_polls):
    import psycopg

    mission = mission_for(requester)
    cookie = session_cookie(requester)
    db = connection.settings_dict
    slow = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )
    try:
        # A transaction takes its sequence number first but commits after a later one.
        late_id = slow.execute(
            "INSERT INTO observations_observation (mission_id, step_name, kind, message, data,"
            " created_at) VALUES (%s, '', 'note', 'Committed late', '{}', now()) RETURNING id",
            [mission.id],
        ).fetchone()[0]

        async def body():
            communicator = reader(f"/ws/missions/{mission.id}/", cookie)
            await expect_ready(communicator)
            early = await arecord(mission, "Committed first")
            received = await frames_until(communicator, lambda p: p["seq"] == early.seq)
            await database_sync_to_async(slow.commit)()
            received += await frames_until(communicator, lambda p: p["seq"] == late_id)
            await communicator.disconnect()
            return [p["message"] for p in received]

        assert run(body) == ["Committed first", "Committed late"]
    finally:
        slow.close()


def test_a_long_gap_arrives_in_bounded_batches_in_order(requester, slow_polls):
    from observations.selectors import CATCH_UP_BATCH

    mission = mission_for(requester)
    Observation.objects.bulk_create(
        Observation(mission=mission, kind="note", message=f"Line {n}") for n in range(450)
    )
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/?after=0", cookie)
        await expect_ready(communicator)
        sizes, seqs = [], []
        while len(seqs) < 450:
            frame = await communicator.receive_json_from(timeout=TIMEOUT)
            sizes.append(len(frame["observations"]))
            seqs += [p["seq"] for p in frame["observations"]]
        await communicator.disconnect()
        return sizes, seqs

    sizes, seqs = run(body)
    assert max(sizes) <= CATCH_UP_BATCH
    assert seqs == sorted(seqs) and len(set(seqs)) == 450


def test_a_reader_may_ask_again_from_an_earlier_sequence_number(requester, slow_polls):
    mission = mission_for(requester)
    first = record(mission, "First")
    second = record(mission, "Second")
    cookie = session_cookie(requester)

    async def body():
        communicator = reader(f"/ws/missions/{mission.id}/?after=0", cookie)
        await expect_ready(communicator)
        await frames_until(communicator, lambda p: p["seq"] == second.seq)
        await communicator.send_json_to({"after": first.seq})
        again = await frames_until(communicator, lambda p: p["seq"] == second.seq)
        await communicator.disconnect()
        return again

    assert [p["message"] for p in run(body)] == ["Second"]
