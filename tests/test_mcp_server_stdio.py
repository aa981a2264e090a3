"""StudioX as an MCP server over stdio: `manage.py mcp_stdio`, authenticated by an API token."""

import asyncio
import subprocess
import sys

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from missions.models import Mission
from tests.support.api import token_for
from tests.support.processes import ROOT, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def stdio(**env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp_stdio"],
        cwd=str(ROOT),
        env=process_env(**env),
    )


def test_an_agent_starts_and_reads_a_mission_over_stdio(requester):
    params = stdio(STUDIOX_MCP_TOKEN=token_for(requester))

    async def run():
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            start = await client.call_tool(
                "start_mission", {"type": "test_count", "input": {"steps": 1}}
            )
            mission_id = start.structured_content["mission"]["id"]
            status = await client.call_tool("get_mission", {"mission_id": mission_id})
            return names, start, status

    names, start, status = asyncio.run(run())
    assert "start_mission" in names and "get_mission" in names
    assert not start.is_error and start.structured_content["created"] is True
    mission = Mission.objects.get(id=start.structured_content["mission"]["id"])
    assert mission.started_by == requester
    answer = status.structured_content
    assert answer["mission"]["status"] == "pending"
    assert answer["mission"]["started_by"] == "requester"


@pytest.mark.parametrize("args, env", [([], {}), (["--token", "wrong"], {})])
def test_it_refuses_to_start_without_a_valid_token(args, env):
    environment = process_env(**env)
    environment.pop("STUDIOX_MCP_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "mcp_stdio", *args],
        cwd=ROOT,
        env=environment,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "token" in result.stderr.lower()
    assert result.stdout == ""
