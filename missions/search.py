"""Finding missions by what people know them by, and showing them that way: the business keys
and the amount a mission type declares (`@mission(..., searchable=..., amount=...)`, see
docs/authoring.md), beside the title, the requester and the id. Decisions are found by their
mission's keys too (decisions.selectors), hence the `prefix`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db.models import Q

from missions.models import Mission
from missions.runtime import MissionDefinition, get_definition, registered_definitions

SEARCH_MAX_LENGTH = 100
ID_PREFIX_MIN_LENGTH = 8  # shorter hex strings match too many ids to mean one


@dataclass(frozen=True)
class BusinessKey:
    """One declared key of a mission, as a list shows it: "Order id" A-1004."""

    name: str
    label: str
    value: str


@dataclass(frozen=True)
class MissionAmount:
    value: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.value} {self.currency}".strip()


def mission_search_q(term: str, *, prefix: str = "") -> Q:
    """What matches `term` (case-insensitive, anywhere in the value): the title, the type,
    the requester's username, an id prefix, and each searchable input field (and the amount)
    its type declares. `prefix` ("mission__") filters a model related to missions instead."""
    term = term.strip()[:SEARCH_MAX_LENGTH]
    if not term:
        return Q()
    query = (
        Q(**{f"{prefix}title__icontains": term})
        | Q(**{f"{prefix}type__icontains": term})
        | Q(**{f"{prefix}started_by__username__icontains": term})
    )
    if len(term) >= ID_PREFIX_MIN_LENGTH and _looks_like_uuid_prefix(term):
        query |= Q(**{f"{prefix}id__startswith": term.lower()})
    for definition in registered_definitions():
        fields = _searched_fields(definition)
        if not fields:
            continue
        # Per type: an "order_id" of one type is not the "order_id" of another.
        matches_a_key = Q()
        for field in fields:
            matches_a_key |= Q(**{f"{prefix}input__{field}__icontains": term})
        query |= Q(**{f"{prefix}type": definition.name}) & matches_a_key
    return query


def _searched_fields(definition: MissionDefinition) -> tuple[str, ...]:
    extra = (definition.amount,) if definition.amount else ()
    return tuple(dict.fromkeys((*definition.searchable, *extra)))


def _looks_like_uuid_prefix(term: str) -> bool:
    return all(c in "0123456789abcdef-" for c in term.lower())


def _definition_of(mission: Mission) -> MissionDefinition | None:
    return get_definition(mission.type, mission.version) or get_definition(mission.type)


def mission_business_keys(mission: Mission) -> list[BusinessKey]:
    """The declared searchable keys of the mission with their values, in declared order;
    keys its input lacks are left out."""
    definition = _definition_of(mission)
    if definition is None or not isinstance(mission.input, dict):
        return []
    return [
        BusinessKey(name=name, label=_label(name), value=_text(mission.input[name]))
        for name in definition.searchable
        if mission.input.get(name) not in (None, "")
    ]


def mission_amount(mission: Mission) -> MissionAmount | None:
    """The mission's declared amount as a Decimal (never a float), or None."""
    definition = _definition_of(mission)
    if definition is None or not definition.amount or not isinstance(mission.input, dict):
        return None
    raw = mission.input.get(definition.amount)
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return MissionAmount(value=value, currency=definition.currency) if value.is_finite() else None


def declared_amount_fields() -> dict[str, str]:
    """The input field holding the amount, by mission type, for types that declare one: what
    the Decision Queue's amount filter reads (decisions.selectors)."""
    return {d.name: d.amount for d in registered_definitions() if d.amount}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _text(value) -> str:
    return value if isinstance(value, str) else str(value)


def declared_key_names() -> list[str]:
    """Every searchable key any registered mission type declares, each once: the columns an
    export of a mixed list needs."""
    names: dict[str, None] = {}
    for definition in registered_definitions():
        names |= dict.fromkeys(definition.searchable)
    return list(names)


MISSION_EXPORT_COLUMNS = (
    "id",
    "type",
    "title",
    "status",
    "outcome",
    "summary",
    "requested_by",
    "created_at",
    "finished_at",
)


def mission_export_header() -> list[str]:
    return [*MISSION_EXPORT_COLUMNS, *declared_key_names(), "amount", "currency"]


def mission_export_rows(missions: Iterable[Mission]) -> Iterator[list]:
    """One row per mission, in mission_export_header's order: values as they are (datetimes,
    Decimals), for the CSV writer to format."""
    keys = declared_key_names()
    for mission in missions:
        yield [
            mission.id,
            mission.type,
            mission.title,
            mission.status,
            mission.outcome,
            mission.summary,
            mission.started_by.get_username() if mission.started_by else "",
            mission.created_at,
            mission.finished_at,
            *mission_key_cells(mission, keys),
        ]


def mission_key_cells(mission: Mission, keys: list[str]) -> list:
    """The mission's values of `keys`, then its amount and currency: the export's columns."""
    found = {key.name: key.value for key in mission_business_keys(mission)}
    amount = mission_amount(mission)
    return [
        *(found.get(name, "") for name in keys),
        amount.value if amount else None,
        amount.currency if amount else "",
    ]
