"""A mission's business outcome and summary beside its status, steps titled in business terms,
and a rail that speaks them: stored by the engine, served by the API and MCP, shown on the
pages; technical lines on a mission's technical view only."""

import asyncio
from datetime import timedelta

import pytest
from django.urls import reverse
from mcp.client import Client
from pydantic import BaseModel

from missions.models import Mission, Step
from missions.runtime import NonRetryableError, RetryPolicy, Verdict, mission
from missions.services import missions_tick
from observations.models import Observation
from studiox.mcp.server import build_server
from tests.support.api import api_client
from tests.support.engine import drain, started
from tests.support.pages import logged_in, session_cookie
from tests.support.rail import (  # noqa: F401 - an autouse fixture
    expect_ready,
    frames_until,
    reader,
    readers_let_go_of_the_database,
    record,
    run,
)

pytestmark = pytest.mark.django_db

SUMMARY = "Refunded 740.00 EUR for A-1004 (RF-000002); approved by supervisor and finance"


class AnswerInput(BaseModel):
    answer: str = "rejected"
    summary: str = ""
    plain: bool = False  # return a dict, not a Verdict


def look_up(order_id: str) -> dict:
    return {"id": order_id, "total": "740.00"}


def broken() -> None:
    raise ConnectionError("payments unreachable")


@mission("outcome_answer", version=1, title="Answering", input=AnswerInput)
def answering(ctx, data: AnswerInput):
    order = ctx.step(
        "retrieve_order", look_up, "A-1004", title=lambda o: f"Looked up order {o['id']}"
    )
    ctx.step("untitled", look_up, "A-1005")
    ctx.transaction("record", look_up, "A-1006", title="Recorded the answer")
    if data.plain:
        return {"outcome": data.answer, "summary": data.summary, "order": order["id"]}
    return Verdict(outcome=data.answer, summary=data.summary, details={"order": order["id"]})


@mission("outcome_failing", version=1, title="Failing", input=AnswerInput)
def failing(ctx, data: AnswerInput):
    ctx.step("retrieve_order", look_up, "A-1004", title="Looked up order A-1004")
    policy = RetryPolicy(max_attempts=2, initial_interval=timedelta(0), jitter=0)
    ctx.step("pay", broken, retry=policy, title="Paid the refund")
    return Verdict(outcome="refunded")


@mission("outcome_failing_child", version=1, title="Failing child", input=AnswerInput)
def failing_child(ctx, data: AnswerInput):
    ctx.step("prepare", look_up, "A-1004", title="Prepared")
    ctx.start_mission("child", type="no_such_type", input={})
    return Verdict(outcome="done")


@mission("outcome_failing_body", version=1, title="Failing body", input=AnswerInput)
def failing_body(ctx, data: AnswerInput):
    ctx.step("prepare", look_up, "A-1004", title="Prepared")
    raise NonRetryableError("the order has no payment")


def answered(user, **input) -> Mission:
    return drain(started(user, "outcome_answer", **input))


def rail(mission: Mission) -> list[tuple[str, str]]:
    return list(mission.observations.order_by("id").values_list("kind", "message"))


# --- the engine ----------------------------------------------------------------------------


def test_a_verdict_stores_its_outcome_and_summary_beside_the_json(requester):
    mission = answered(requester, answer="refunded", summary=SUMMARY)
    assert (mission.status, mission.outcome, mission.summary) == ("succeeded", "refunded", SUMMARY)
    assert mission.verdict == {"outcome": "refunded", "summary": SUMMARY, "order": "A-1004"}
    verdict_line = mission.observations.get(kind="verdict")
    assert verdict_line.message == SUMMARY
    assert verdict_line.data["outcome"] == "refunded"


def test_a_plain_dict_verdict_declares_them_by_its_keys(requester):
    mission = answered(requester, answer="rejected", summary="Rejected by supervisor", plain=True)
    assert (mission.outcome, mission.summary) == ("rejected", "Rejected by supervisor")
    without_summary = answered(requester, answer="rejected", plain=True)
    assert (without_summary.outcome, without_summary.summary) == ("rejected", "")
    assert without_summary.observations.get(kind="verdict").message == "Verdict: rejected"


def test_a_step_title_is_stored_and_is_the_steps_line_on_the_rail(requester):
    mission = answered(requester, summary=SUMMARY)
    titles = dict(Step.objects.filter(mission=mission).values_list("name", "title"))
    assert titles == {
        "retrieve_order": "Looked up order A-1004",
        "untitled": "",
        "record": "Recorded the answer",
    }
    completed = [m for kind, m in rail(mission) if kind == "step_completed"]
    assert completed == [
        "Looked up order A-1004",
        "Completed step 'untitled'",
        "Recorded the answer",
    ]


def test_a_failed_mission_names_the_step_that_failed(requester):
    mission = drain(started(requester, "outcome_failing"))
    assert mission.status == "waiting"  # the first attempt failed; its retry is due at once
    assert missions_tick()["woken"] == 1
    mission = drain(mission)
    assert (mission.status, mission.current_step) == ("failed", "pay")
    assert (mission.outcome, mission.summary) == ("", "")


def test_a_mission_failing_to_start_a_child_names_that_step(requester):
    mission = drain(started(requester, "outcome_failing_child"))
    assert (mission.status, mission.current_step) == ("failed", "child")


def test_a_mission_failing_between_steps_names_the_last_step_it_reached(requester):
    mission = drain(started(requester, "outcome_failing_body"))
    assert (mission.status, mission.current_step) == ("failed", "prepare")
    assert mission.error == "the order has no payment"


# --- the rail: business lines by default, technical ones on the technical view -------------


def test_the_mission_page_shows_business_lines_and_the_technical_view_every_line(requester):
    mission = answered(requester, summary=SUMMARY)
    client = logged_in(requester)
    page = client.get(reverse("missions:detail", args=[mission.id])).text
    assert "Looked up order A-1004" in page
    assert "Completed step &#x27;untitled&#x27;" not in page
    assert "?view=technical" in page
    technical = client.get(reverse("missions:detail", args=[mission.id]), {"view": "technical"})
    assert "Completed step &#x27;untitled&#x27;" in technical.text
    assert "Looked up order A-1004" in technical.text
    assert f'data-live-stream="/ws/missions/{mission.id}/?view=technical"' in technical.text


def test_retries_are_technical_lines(requester):
    mission = drain(started(requester, "outcome_failing"))
    retrying = mission.observations.get(kind="retrying")
    assert retrying.data["error"] == "ConnectionError: payments unreachable"
    assert retrying.is_technical
    business = Observation.objects.filter(mission=mission).business()
    assert list(business.values_list("message", flat=True)) == [
        "Started Failing",
        "Looked up order A-1004",
    ]
    page = logged_in(requester).get(reverse("missions:detail", args=[mission.id])).text
    assert "Step &#x27;pay&#x27; failed (attempt 1 of 2)" not in page


def test_the_global_rail_feed_shows_business_lines_only(admin_user):
    mission = drain(started(admin_user, "outcome_failing"))  # still active: retrying
    page = logged_in(admin_user).get(reverse("observations:rail")).text
    assert f'data-mission="{mission.id}"' in page
    assert "Looked up order A-1004" in page
    assert "Step &#x27;pay&#x27; failed" not in page


@pytest.mark.django_db(transaction=True)
def test_the_live_stream_applies_the_same_filter(requester, settings):
    settings.STUDIOX_LIVE_POLL_SECONDS = 3600  # what arrives was pushed
    mission = started(requester)
    cookie = session_cookie(requester)

    async def body(path: str) -> list[str]:
        communicator = reader(path, cookie)
        await expect_ready(communicator)
        from channels.db import database_sync_to_async

        write = database_sync_to_async(record)
        await write(mission, "Completed step 'n:0'", kind="step_completed", attempts=1)
        await write(mission, "Retrying", kind="retrying", technical=True)
        await write(mission, "Looked up order A-1004", kind="step_completed", title="x")
        lines = await frames_until(communicator, lambda p: p["message"].startswith("Looked"))
        await communicator.disconnect()
        return [p["message"] for p in lines]

    assert run(body, f"/ws/missions/{mission.id}/") == ["Looked up order A-1004"]
    assert run(body, f"/ws/missions/{mission.id}/?view=technical") == [
        "Completed step 'n:0'",
        "Retrying",
        "Looked up order A-1004",
    ]


# --- the pages: the outcome badge first, the status beside it ------------------------------


def test_the_list_shows_the_outcome_badge_in_its_colour_and_the_status_beside_it(requester):
    rejected = answered(requester, answer="rejected", summary="Rejected by supervisor")
    refunded = answered(requester, answer="refunded", summary=SUMMARY)
    other = answered(requester, answer="counted")
    text = logged_in(requester).get(reverse("missions:list")).text
    assert 'class="badge outcome bad" data-outcome="rejected"' in text
    assert 'class="badge outcome good" data-outcome="refunded"' in text
    assert 'class="badge outcome neutral" data-outcome="counted"' in text
    assert 'class="badge secondary succeeded"' in text
    assert "Rejected by supervisor" in text and SUMMARY in text
    assert {rejected.id, refunded.id, other.id} <= set(
        Mission.objects.filter(status="succeeded").values_list("id", flat=True)
    )


def test_a_mission_without_an_outcome_wears_its_status_badge(requester):
    pending = started(requester)
    text = logged_in(requester).get(reverse("missions:list")).text
    assert f'href="{reverse("missions:detail", args=[pending.id])}"' in text
    assert 'class="badge pending" data-status="pending"' in text
    assert "badge outcome" not in text


def test_the_mission_page_shows_outcome_summary_and_the_whole_verdict(requester):
    long_summary = "Rejected: " + "the customer's reason does not hold " * 5
    mission = answered(requester, answer="rejected_by_policy", summary=long_summary.strip())
    text = logged_in(requester).get(reverse("missions:detail", args=[mission.id])).text
    assert 'data-testid="mission-outcome">Rejected by policy<' in text
    assert 'data-testid="mission-status">Succeeded<' in text
    assert 'data-testid="mission-summary">' + long_summary.strip().replace("'", "&#x27;") in text
    assert '<pre class="json" data-testid="verdict">' in text


def test_the_admin_list_shows_the_outcome_badge(admin_user):
    answered(admin_user, answer="rejected", summary="Rejected by supervisor")
    text = logged_in(admin_user).get(reverse("admin:missions_mission_changelist")).text
    assert '<span class="badge outcome bad" title="Rejected by supervisor">Rejected</span>' in text
    assert "missions/admin.css" in text


# --- the API and MCP -----------------------------------------------------------------------


def test_the_api_serves_outcome_summary_step_titles_and_technical_lines(requester):
    mission = answered(requester, answer="refunded", summary=SUMMARY)
    client = api_client(requester)
    body = client.get(f"/api/missions/{mission.id}/").json()
    assert (body["outcome"], body["summary"]) == ("refunded", SUMMARY)
    listed = client.get("/api/missions/").json()["results"][0]
    assert (listed["outcome"], listed["summary"]) == ("refunded", SUMMARY)
    steps = client.get(f"/api/missions/{mission.id}/steps/").json()["results"]
    assert [s["title"] for s in steps] == ["Looked up order A-1004", "", "Recorded the answer"]
    lines = client.get(f"/api/missions/{mission.id}/observations/").json()["results"]
    technical = {line["message"]: line["technical"] for line in lines}
    assert technical["Completed step 'untitled'"] is True
    assert technical["Looked up order A-1004"] is False
    assert technical[SUMMARY] is False


@pytest.mark.django_db(transaction=True)
def test_mcp_get_mission_serves_outcome_and_summary(requester):
    mission = answered(requester, answer="refunded", summary=SUMMARY)

    async def ask() -> dict:
        async with Client(build_server(stdio_user_id=requester.id)) as client:
            answer = await client.call_tool("get_mission", {"mission_id": str(mission.id)})
            return answer.structured_content

    answer = asyncio.run(ask())
    assert (answer["mission"]["outcome"], answer["mission"]["summary"]) == ("refunded", SUMMARY)
    assert [line["message"] for line in answer["observations"]] == [
        "Started Answering",
        "Looked up order A-1004",
        "Recorded the answer",
        SUMMARY,
    ]
