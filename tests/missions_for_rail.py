"""A small mission for the rail's live tests, also imported by worker and web processes
(STUDIOX_MISSION_MODULES=tests.missions_for_rail)."""

from datetime import timedelta

from pydantic import BaseModel, Field

from missions.runtime import mission


class BriefingInput(BaseModel):
    subject: str = "Quarterly figures"
    pause_seconds: float = Field(default=2.0, ge=0, le=86400)


def gather_facts(subject: str) -> list[str]:
    return [f"{subject}: revenue", f"{subject}: costs", f"{subject}: outlook"]


def write_summary(facts: list[str]) -> str:
    return f"{len(facts)} facts reviewed"


@mission("rail_briefing", version=1, title="Briefing", input=BriefingInput)
def briefing(ctx, data: BriefingInput) -> dict:
    facts = ctx.step("gather_facts", gather_facts, data.subject)
    ctx.observe(f"Gathered {len(facts)} facts about {data.subject}")
    ctx.sleep("cool_down", timedelta(seconds=data.pause_seconds))
    summary = ctx.step("write_summary", write_summary, facts)
    return {"outcome": "briefed", "summary": summary}
