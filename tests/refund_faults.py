"""Fault injection for the refund durability test, loaded into worker processes through
STUDIOX_MISSION_MODULES: when the file named by STUDIOX_TEST_CRASH_AFTER_TOOL exists, the
worker is killed (SIGKILL) right after the payment tool answered and before the step's
checkpoint could commit: the worst moment for a side effect."""

import os
import signal
from pathlib import Path

from integrations import mcp_client

_real_call_tool = mcp_client.call_tool


def _call_then_die(**kwargs):
    result = _real_call_tool(**kwargs)
    trigger = Path(os.environ.get("STUDIOX_TEST_CRASH_AFTER_TOOL", "/nonexistent"))
    if kwargs.get("tool") == "issue_refund" and trigger.exists():  # reads are not the risk
        trigger.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    return result


mcp_client.call_tool = _call_then_die
