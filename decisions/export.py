"""What the CSV exports of decisions and of audit trails hold, column by column. The rows are
read through the same selectors as the pages, so an export shows what its page shows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from decisions.models import Decision, DecisionAudit
from missions.search import declared_key_names, mission_key_cells

DECISION_COLUMNS = (
    "id",
    "title",
    "role",
    "status",
    "outcome",
    "mission_id",
    "mission_title",
    "requested_by",
    "created_at",
    "due_at",
    "decided_by",
    "decided_at",
    "comment",
)
AUDIT_COLUMNS = (
    "decision_id",
    "decision_title",
    "at",
    "action",
    "user",
    "reason",
    "before",
    "after",
)
CHUNK = 500


def decision_export_header() -> list[str]:
    return [*DECISION_COLUMNS, *declared_key_names(), "amount", "currency"]


def decision_export_rows(decisions: QuerySet[Decision]) -> Iterator[list]:
    """One row per decision, with its mission's business keys and amount."""
    keys = declared_key_names()
    rows = decisions.select_related("mission", "mission__started_by", "role")
    for decision in rows.iterator(chunk_size=CHUNK):
        mission = decision.mission
        yield [
            decision.id,
            decision.title,
            decision.role.name,
            decision.status,
            decision.outcome,
            mission.id,
            mission.title,
            mission.started_by.get_username() if mission.started_by else "",
            decision.created_at,
            decision.due_at,
            decision.decided_by_name,
            decision.decided_at,
            decision.comment,
            *mission_key_cells(mission, keys),
        ]


def audit_export_header() -> list[str]:
    return list(AUDIT_COLUMNS)


def audit_export_rows(entries: Iterable[DecisionAudit]) -> Iterator[list]:
    """One row per change of a decision, oldest first as the trail reads."""
    for entry in entries:
        yield [
            entry.decision_id,
            entry.decision.title,
            entry.at,
            entry.action,
            entry.username or "system",
            entry.reason,
            _json(entry.before),
            _json(entry.after),
        ]


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str) if value else ""
