"""Missions the rate-limit tests run, also in worker processes
(STUDIOX_MISSION_MODULES=tests.missions_for_tests,tests.missions_for_rate_limits)."""

from pydantic import BaseModel, Field

from missions.runtime import mission


class ToolInput(BaseModel):
    server: str
    item: int = Field(default=0, ge=0)


@mission("test_rate_limited_tool", version=1, title="Calls a rate-limited tool", input=ToolInput)
def rate_limited_tool(ctx, data: ToolInput) -> dict:
    answer = ctx.call_tool(
        "record", server=data.server, tool="record_call", arguments={"item": data.item}
    )
    return {"outcome": "recorded", "item": answer["item"]}
