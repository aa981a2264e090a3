"""One rail line as HTML, rendered by the server for the live streams (observations.consumers):
the pages insert it as it comes (observations/static/observations/live.js), so a line's markup
has one home, `observations/_line.html`, whether the page was rendered or the line arrived live.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime

from missions.models import Mission
from observations.models import Observation

LINE_TEMPLATE = "observations/_line.html"


def observation_line_html(payload: dict, *, own_mission: str = "") -> str:
    """The line of a stream payload (observations.services.observation_payload with its
    "mission_title"); a mission's own page (`own_mission`) labels only other missions' lines."""
    line = Observation(
        id=payload["seq"],
        mission_id=payload["mission_id"],
        step_name=payload.get("step") or "",
        kind=payload["kind"],
        message=payload["message"],
        data=payload.get("data") or {},
        created_at=parse_datetime(payload["created_at"]),
    )
    # Built from the payload, not read: the stream renders without a query per line.
    line.mission = Mission(id=payload["mission_id"], title=payload.get("mission_title") or "")
    context = {"o": line, "show_mission": True, "own_mission": own_mission}
    return render_to_string(LINE_TEMPLATE, context).strip()
