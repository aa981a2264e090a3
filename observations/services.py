from django.db import transaction

from observations.models import Observation
from observations.publish import publish_observations, publisher_flush, push_to_groups
from observations.redaction import redact

__all__ = [  # push_to_groups and publisher_flush: other apps' live hints ride the same thread
    "observation_clean",
    "observation_payload",
    "observation_publish_on_commit",
    "observation_record",
    "publisher_flush",
    "push_to_groups",
]


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


def observation_clean(*, message: str, data: dict | None) -> tuple[str, dict]:
    """What may be stored: secrets masked, the message cut to one line's length."""
    return redact(message)[:500], redact(data or {})


def observation_publish_on_commit(payloads: list[dict]) -> None:
    """Push rows written by someone else (the engine's one-statement checkpoint) after commit."""
    transaction.on_commit(lambda: publish_observations(payloads))


def observation_record(
    *, mission, kind: str, message: str, step_name: str = "", data: dict | None = None
) -> Observation:
    """Store one rail line in the caller's transaction; push it live once that commits."""
    message, data = observation_clean(message=message, data=data)
    observation = Observation.objects.create(
        mission=mission, kind=kind, message=message, step_name=step_name, data=data
    )
    payload = observation_payload(observation)
    transaction.on_commit(lambda: publish_observations([payload]))
    return observation
