from django.db import transaction

from observations.models import Observation
from observations.publish import publish_observations
from observations.redaction import redact


def observation_payload(observation: Observation) -> dict:
    return {
        "seq": observation.id,
        "mission_id": str(observation.mission_id),
        "step": observation.step_name,
        "kind": observation.kind,
        "message": observation.message,
        "data": observation.data,
        "created_at": observation.created_at.isoformat(),
    }


def observation_record(
    *, mission, kind: str, message: str, step_name: str = "", data: dict | None = None
) -> Observation:
    """Store one rail line in the caller's transaction; push it live once that commits."""
    observation = Observation.objects.create(
        mission=mission,
        kind=kind,
        message=redact(message)[:500],
        step_name=step_name,
        data=redact(data or {}),
    )
    payload = observation_payload(observation)
    transaction.on_commit(lambda: publish_observations([payload]))
    return observation
