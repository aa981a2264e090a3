"""Reads of the rail: what a reader may see, from a sequence number on."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, QuerySet

from missions import selectors as mission_selectors
from missions.models import Mission
from missions.selectors import missions_visible_to
from observations.models import Observation
from observations.services import observation_payload

CATCH_UP_BATCH = 200  # rows sent to a reader at once; a longer gap takes several rounds
LATE_ID_LIMIT = 5000


def user_sees_all_missions(user: AbstractBaseUser) -> bool:
    # missions_visible_to's own rule, asked directly: on the global rail "every observation"
    # must stay an index scan, not a semi-join on every mission.
    return user.is_authenticated and mission_selectors.mission_sees_all(user)


def observations_visible_to(user: AbstractBaseUser) -> QuerySet[Observation]:
    """Observations of the missions a user may see."""
    if not user.is_authenticated:
        return Observation.objects.none()
    if user_sees_all_missions(user):
        return Observation.objects.all()
    return Observation.objects.filter(mission__in=missions_visible_to(user).values("id"))


def observations_of_mission(*, mission_id) -> QuerySet[Observation]:
    return Observation.objects.filter(mission_id=mission_id)


def observations_of_missions(*, mission_ids) -> QuerySet[Observation]:
    """The rail of several missions (a parent and its descendants) as one sequence."""
    return Observation.objects.filter(mission_id__in=list(mission_ids))


def mission_rail_labels(*, user: AbstractBaseUser, mission: Mission) -> dict[str, str]:
    """The missions a mission's rail covers for `user`, id -> label: the mission and every
    descendant they may see (children and theirs: a parent's rail tells their story too)."""
    return mission_selectors.mission_subtree_labels(user=user, mission=mission)


def mission_observations(
    *, mission: Mission, after: int = 0, limit: int = 500
) -> list[Observation]:
    """The mission's rail after sequence number `after`, oldest first, at most `limit` lines."""
    return list(Observation.objects.filter(mission=mission, id__gt=after).order_by("id")[:limit])


def mission_recent_observations(
    *, mission: Mission, limit: int = 20, business: bool = False
) -> list[Observation]:
    """The mission's last `limit` rail lines (its business lines only, with `business`),
    oldest first."""
    lines = Observation.objects.filter(mission=mission)
    recent: QuerySet[Observation] = (lines.business() if business else lines).order_by("-id")
    return list(reversed(recent[:limit]))


def observation_payloads(observations) -> list[dict]:
    """Payloads as pushed (observation_payload), plus the mission's title for display."""
    return [
        {**observation_payload(o), "mission_title": _mission_label(o.mission)} for o in observations
    ]


def _mission_label(mission: Mission) -> str:
    return mission.title or mission.type


def observations_after(*, scope: QuerySet[Observation], after: int, limit: int = CATCH_UP_BATCH):
    """Up to `limit` payloads with a sequence number above `after`, oldest first."""
    rows = scope.filter(id__gt=after).select_related("mission").order_by("id")[:limit]
    return observation_payloads(rows)


def observation_ids_between(*, scope: QuerySet[Observation], floor: int, upto: int) -> list[int]:
    """Sequence numbers in (floor, upto]: a transaction that took its number earlier than one
    already read may commit later, so readers look behind their cursor for a short while."""
    if floor >= upto:
        return []
    ids = scope.filter(id__gt=floor, id__lte=upto).order_by("id").values_list("id", flat=True)
    return list(ids[:LATE_ID_LIMIT])


def observations_with_ids(*, scope: QuerySet[Observation], ids: list[int]) -> list[dict]:
    rows = scope.filter(id__in=ids).select_related("mission").order_by("id")
    return observation_payloads(rows)


def observation_last_seq() -> int:
    """The highest sequence number written so far (0 when there is none)."""
    last = Observation.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


TECHNICAL_VIEW = "technical"  # ?view=technical on a mission's page and its stream


def wants_technical_view(value: str | None) -> bool:
    """Whether a page or stream asked for the technical view (every line, not business only)."""
    return (value or "").strip().lower() == TECHNICAL_VIEW


def business_lines(scope: QuerySet[Observation]) -> QuerySet[Observation]:
    """The lines of `scope` that people read by default (observations.models)."""
    return scope.business()


def observations_latest(*, scope: QuerySet[Observation], limit: int = 30) -> list[Observation]:
    """The newest observations, newest first, with their missions."""
    return list(scope.select_related("mission").order_by("-id")[:limit])


def mission_labels(*, mission_ids: list[str]) -> dict[str, str]:
    rows = Mission.objects.filter(id__in=mission_ids).values_list("id", "title", "type")
    return {str(mission_id): title or type_ for mission_id, title, type_ in rows}


def rail_missions(*, user: AbstractBaseUser) -> QuerySet[Mission]:
    """Every active mission the user may see: the longest-waiting first, then the newest."""
    return (
        missions_visible_to(user)
        .exclude(status__in=Mission.FINAL_STATUSES)
        .order_by(F("waiting_since").asc(nulls_last=True), "-created_at", "-id")
    )


def rail_status_counts(*, user: AbstractBaseUser) -> dict[str, int]:
    """How many active missions are in each state, for the rail's headline."""
    missions = missions_visible_to(user).exclude(status__in=Mission.FINAL_STATUSES)
    if not user_sees_all_missions(user):
        missions = Mission.objects.filter(id__in=missions.values("id"))
    rows = missions.order_by().values("status").annotate(n=Count("id"))
    counts = {row["status"]: row["n"] for row in rows}
    return {
        label: counts.get(value, 0)
        for value, label in Mission.Status.choices
        if value not in Mission.FINAL_STATUSES
    }
