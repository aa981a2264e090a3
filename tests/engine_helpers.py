"""Drive missions in-process, exactly as a worker would, for tests of engine rules."""

from missions.engine import Outcome, mission_advance
from missions.models import Mission


def drain(mission: Mission, *, limit: int = 10_000) -> Mission:
    """Advance until the mission stops making progress on its own (waits or finishes)."""
    for _ in range(limit):
        outcome = mission_advance(mission_id=mission.id, worker="test-worker")
        if outcome not in (Outcome.CONTINUE,):
            break
    mission.refresh_from_db()
    return mission
