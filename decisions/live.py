"""Live hints for open Decision Queue pages: "a decision of your role changed, re-fetch".

A hint carries no data (the page re-fetches its list, which applies permissions) and is sent
to the decision's role group only after the transaction commits. Pushes are at-most-once by
the channel-layer spec, so pages also re-fetch on (re)connect and poll as a fallback.

Hints travel on the observations publisher (one long-lived thread per process with its own
event loop), so a sync worker never opens and closes a loop per push and never waits on Redis.
"""

from __future__ import annotations

from django.db import transaction

from observations.services import publisher_flush, push_to_groups

MESSAGE_TYPE = "decision.changed"  # handled by DecisionQueueConsumer.decision_changed


def role_group(role_id: int) -> str:
    """The channel-layer group of the people in one role (a Django group id)."""
    return f"decisions-role-{role_id}"


def decision_hint_on_commit(*, decision_id: int, role_id: int, change: str, state: str) -> None:
    """Tell the role's open queue and decision pages, once the caller's transaction commits.
    `state` is the decision's live_state after the change: a page that shows it already (the
    one whose user made the change) has nothing to re-fetch."""
    message = {"type": MESSAGE_TYPE, "decision": decision_id, "change": change, "state": state}
    transaction.on_commit(lambda: push_hints({role_group(role_id): message}))


def push_hints(messages: dict[str, dict]) -> None:
    """Send one message per group; never raises and, with Redis, never blocks the caller."""
    push_to_groups(messages)


def hints_flush(timeout: float = 2.0) -> bool:
    """Send what is still queued in this process (tests and process exit)."""
    return publisher_flush(timeout)
