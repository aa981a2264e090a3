"""Every way people change a decision: decide, claim, release and reassign. What the engine
calls (open, outcome, expire, withdraw) and the lock order both sides keep are in
`decisions.waits`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from decisions.models import Decision, DecisionAudit, Delegation
from decisions.selectors import decisions_visible_to, delegators_of
from decisions.trail import decision_audit, decision_hint
from missions.waits import mission_lock, mission_wake
from observations.services import observation_record

Status = Decision.Status
FINAL_ACTIONS = {"approved": "approved", "rejected": "rejected"}
FINAL_AUDIT_ACTIONS = ("approved", "rejected", "decided")


class DecisionError(Exception):
    """A request about a decision that cannot be done; the message says why."""


class DecisionNotAllowed(DecisionError):
    """Not in the role, or four eyes (own mission, another tier), or claimed by someone else."""


class DecisionClaimedByOther(DecisionNotAllowed):
    """A colleague holds the claim: only they may decide until it is released or reassigned."""

    def __init__(self, decision: Decision):
        self.decision = decision
        holder = decision.claimed_by.get_username() if decision.claimed_by else "a colleague"
        super().__init__(
            f"Claimed by {holder}: only they may decide this until the claim is released "
            "(an administrator may release or reassign it, which is recorded)."
        )


class DecisionAlreadyDecided(DecisionError):
    """Someone got there first; the message names who, what and when."""

    def __init__(self, decision: Decision):
        self.decision = decision
        super().__init__(_already(decision))


class DecisionInvalid(DecisionError):
    """An outcome that is not one of the decision's options, or a missing reason."""


def _already(decision: Decision) -> str:
    when = f" at {decision.decided_at:%Y-%m-%d %H:%M} UTC" if decision.decided_at else ""
    who = f" by {decision.decided_by_name}" if decision.decided_by_name else ""
    if decision.status == Status.DECIDED:
        return f"Already decided ({decision.outcome}){who}{when}."
    if decision.status == Status.WITHDRAWN:
        return f"Already withdrawn{when}: {decision.comment or 'the mission was cancelled'}."
    return f"Already {decision.status}{who}{when}."


# A claim is a soft lock so two approvers do not work the same item: while a decision is
# claimed, only the holder may decide it. Nobody overrides a claim silently, not even a
# superuser: an administrator first releases it or reassigns it to themselves, and both are
# recorded in the audit trail with who held the claim.


def decision_check_allowed(
    *, decision: Decision, user: AbstractBaseUser
) -> AbstractBaseUser | None:
    """Raise DecisionNotAllowed unless `user` may decide: a member of the role (once the
    decision is escalated, of its escalation role too), or the delegate of such a member
    while the delegation is in force; and four eyes, for the user and for the colleague they
    stand in for alike: not the mission's requester, and not the decider of another decision
    of the same mission. Returns that colleague, or None when the user decides as themselves."""
    if not user.is_authenticated:
        raise DecisionNotAllowed(f"Only members of {_roles_named(decision)} may decide this.")
    if _is_member(decision, user):
        colleagues = [None]
    else:
        colleagues = list(delegators_of(user=user).filter(groups__id__in=_role_ids(decision)))
    if not colleagues:
        raise DecisionNotAllowed(f"Only members of {_roles_named(decision)} may decide this.")
    _check_four_eyes(decision, person=user)
    refusal = None
    for colleague in dict.fromkeys(colleagues):
        if colleague is None:
            return None
        try:
            _check_four_eyes(decision, person=colleague, for_delegate=True)
        except DecisionNotAllowed as exc:
            refusal = refusal or exc
        else:
            return colleague
    raise refusal


def _role_ids(decision: Decision) -> list[int]:
    escalated = decision.escalated_at is not None and decision.escalation_role_id is not None
    return [decision.role_id, *([decision.escalation_role_id] if escalated else [])]


def _roles_named(decision: Decision) -> str:
    if decision.escalated_at is not None and decision.escalation_role_id is not None:
        return f"{decision.role.name} or {decision.escalation_role.name}"
    return decision.role.name


def _is_member(decision: Decision, user: AbstractBaseUser) -> bool:
    return user.groups.filter(id__in=_role_ids(decision)).exists()


def _check_four_eyes(
    decision: Decision, *, person: AbstractBaseUser, for_delegate: bool = False
) -> None:
    """Four eyes for one person: not the requester, not the decider of another tier, whether
    they decided it themselves or through their delegate (recorded "on behalf of")."""
    name = person.get_username()
    if decision.mission.started_by_id == person.pk:
        if for_delegate:
            raise DecisionNotAllowed(
                f"{name} started this mission, so you may not decide it on their behalf."
            )
        raise DecisionNotAllowed("You started this mission, so someone else must decide it.")
    by_them = Q(decided_by=person) | Q(
        audit__action__in=FINAL_AUDIT_ACTIONS, audit__after__on_behalf_of_id=person.pk
    )
    earlier = (
        Decision.objects.filter(by_them, mission_id=decision.mission_id)
        .exclude(id=decision.id)
        .first()
    )
    if earlier is None:
        return
    if for_delegate:
        raise DecisionNotAllowed(
            f"{name} already decided '{earlier.title}' on this mission, so you may not decide "
            "this tier on their behalf."
        )
    raise DecisionNotAllowed(
        f"You already decided '{earlier.title}' on this mission; "
        "another person must decide this tier."
    )


def decision_check_claim(*, decision: Decision, user: AbstractBaseUser) -> None:
    """Raise DecisionClaimedByOther if a colleague holds the claim on `decision`."""
    if decision.claimed_by_id is not None and decision.claimed_by_id != user.pk:
        raise DecisionClaimedByOther(decision)


@transaction.atomic
def decision_decide(
    *, decision: Decision, user: AbstractBaseUser, outcome: str, comment: str = ""
) -> Decision:
    """Decide a pending decision that nobody else has claimed. Exactly one of two racing
    approvers wins (one conditional UPDATE); the other gets DecisionAlreadyDecided naming who
    decided first, or DecisionClaimedByOther if a colleague claimed it meanwhile. The mission
    resumes as soon as this commits."""
    if outcome not in decision.options:
        raise DecisionInvalid(f"Outcome must be one of: {', '.join(decision.options)}.")
    colleague = decision_check_allowed(decision=decision, user=user)
    decision_check_claim(decision=decision, user=user)
    # The mission's row lock first (the lock order in decisions.waits): a worker re-entering
    # this wait (after a pause, a lost lease) then either sees this decision or has committed
    # its wait before mission_wake looks. Otherwise it could read "pending" and re-wait after
    # mission_wake found the mission running: stuck until the time-out, or for good.
    mission_lock(mission_id=decision.mission_id)
    now = timezone.now()
    status = FINAL_ACTIONS.get(outcome, Status.DECIDED)
    unclaimed_or_mine = Q(claimed_by__isnull=True) | Q(claimed_by=user)
    won = Decision.objects.filter(unclaimed_or_mine, id=decision.id, status=Status.PENDING).update(
        status=status,
        outcome=outcome,
        comment=comment[:5000],
        decided_by=user,
        decided_by_name=user.get_username(),
        decided_at=now,
        claimed_by=None,
        claimed_at=None,
    )
    decision.refresh_from_db()
    if not won:
        if decision.is_pending:
            raise DecisionClaimedByOther(decision)
        raise DecisionAlreadyDecided(decision)
    # A delegate's decision names both: who decided, and for whom (four eyes reads it back).
    on_behalf = (
        {"on_behalf_of": colleague.get_username(), "on_behalf_of_id": colleague.pk}
        if colleague is not None
        else {}
    )
    decision_audit(
        decision,
        FINAL_ACTIONS.get(outcome, "decided"),
        user=user,
        reason=comment,
        before={"status": "pending"},
        after={"status": status, "outcome": outcome, **on_behalf},
    )
    who = user.get_username()
    for_whom = f" on behalf of {colleague.get_username()}" if colleague is not None else ""
    observation_record(
        mission=decision.mission,
        kind="decision_made",
        step_name=decision.step_name,
        message=f"{decision.title}: {outcome} by {who}{for_whom}"
        + (f" — “{comment[:120]}”" if comment else ""),
        data={"outcome": outcome, "by": who, "role": decision.role.name, **on_behalf},
    )
    mission_wake(mission_id=decision.mission_id)
    decision_hint(decision, "decided")
    return decision


@transaction.atomic
def decision_claim(*, decision: Decision, user: AbstractBaseUser) -> Decision:
    """Mark a pending decision as taken by `user`, so colleagues see it; fails if held."""
    decision_check_allowed(decision=decision, user=user)
    taken = Decision.objects.filter(
        id=decision.id, status=Status.PENDING, claimed_by__isnull=True
    ).update(claimed_by=user, claimed_at=timezone.now())
    decision.refresh_from_db()
    if not taken:
        if not decision.is_pending:
            raise DecisionAlreadyDecided(decision)
        if decision.claimed_by_id == user.id:
            return decision
        raise DecisionNotAllowed(f"{decision.claimed_by.get_username()} has already claimed this.")
    decision_audit(
        decision, DecisionAudit.Action.CLAIMED, user=user, after={"claimed_by": user.get_username()}
    )
    decision_hint(decision, "claimed")
    return decision


@transaction.atomic
def decision_release(*, decision: Decision, user: AbstractBaseUser) -> Decision:
    """Give a claimed decision back to the queue: by its holder, or an admin."""
    holder = Decision.objects.filter(id=decision.id, status=Status.PENDING)
    # Whose claim this was, for the audit trail (an admin may release a colleague's).
    previous = holder.values_list("claimed_by__username", flat=True).first()
    if not (user.is_superuser or user.has_perm("decisions.change_decision")):
        holder = holder.filter(claimed_by=user)
    released = holder.exclude(claimed_by__isnull=True).update(claimed_by=None, claimed_at=None)
    decision.refresh_from_db()
    if not released:
        if not decision.is_pending:
            raise DecisionAlreadyDecided(decision)
        if decision.claimed_by_id is None:
            raise DecisionInvalid("Nobody has claimed this decision.")
        raise DecisionNotAllowed("Only the person who claimed this decision can release it.")
    decision_audit(
        decision, DecisionAudit.Action.RELEASED, user=user, before={"claimed_by": previous}
    )
    decision_hint(decision, "released")
    return decision


@transaction.atomic
def decision_reassign(
    *, decision: Decision, to_user: AbstractBaseUser, by: AbstractBaseUser, reason: str
) -> Decision:
    """An admin hands a pending decision to a role member, with a recorded reason."""
    if not (by.is_superuser or by.has_perm("decisions.change_decision")):
        raise DecisionNotAllowed("Only an administrator may reassign a decision.")
    if not reason.strip():
        raise DecisionInvalid("A reassignment needs a reason.")
    decision_check_allowed(decision=decision, user=to_user)
    before = {"claimed_by": decision.claimed_by.get_username() if decision.claimed_by else None}
    moved = Decision.objects.filter(id=decision.id, status=Status.PENDING).update(
        claimed_by=to_user, claimed_at=timezone.now()
    )
    decision.refresh_from_db()
    if not moved:
        raise DecisionAlreadyDecided(decision)
    decision_audit(
        decision,
        DecisionAudit.Action.REASSIGNED,
        user=by,
        reason=reason,
        before=before,
        after={"claimed_by": to_user.get_username()},
    )
    decision_hint(decision, "reassigned")
    return decision


# Bulk decisions: one outcome and one comment for many decisions, each still decided by
# decision_decide in its own transaction, so every rule holds per decision and one refusal
# never undoes a colleague's decision.

BULK_LIMIT = 100
BULK_OUTCOMES = ("approved", "rejected")


class DecisionBulkTooLarge(DecisionInvalid):
    """More decisions in one request than BULK_LIMIT."""


@dataclass(frozen=True)
class BulkResult:
    decision_id: int
    title: str
    decided: bool
    message: str


def decisions_decide_many(
    *, decision_ids: Iterable, user: AbstractBaseUser, outcome: str, comment: str = ""
) -> list[BulkResult]:
    """Decide each of `decision_ids` (in the order given, each once) with `outcome` and
    `comment` through decision_decide: its permission, four-eyes, claim and state checks.
    Returns what happened to each: decided, or refused and why."""
    if outcome not in BULK_OUTCOMES:
        raise DecisionInvalid(f"Outcome must be one of: {', '.join(BULK_OUTCOMES)}.")
    ids = _bulk_ids(decision_ids)
    visible = decisions_visible_to(user).in_bulk(ids)
    return [
        _decide_one(
            visible.get(decision_id), decision_id, user=user, outcome=outcome, comment=comment
        )
        for decision_id in ids
    ]


def _bulk_ids(decision_ids: Iterable) -> list[int]:
    try:
        ids = list(dict.fromkeys(int(value) for value in decision_ids))
    except (TypeError, ValueError):
        raise DecisionInvalid("Decisions are chosen by their numbers.") from None
    if not ids:
        raise DecisionInvalid("Select at least one decision.")
    if len(ids) > BULK_LIMIT:
        raise DecisionBulkTooLarge(
            f"At most {BULK_LIMIT} decisions at once; {len(ids)} were selected."
        )
    return ids


def _decide_one(
    decision: Decision | None,
    decision_id: int,
    *,
    user: AbstractBaseUser,
    outcome: str,
    comment: str,
) -> BulkResult:
    if decision is None:
        return BulkResult(decision_id, "", False, "No such decision, or not one you may see.")
    try:
        decision = decision_decide(decision=decision, user=user, outcome=outcome, comment=comment)
    except DecisionError as exc:
        return BulkResult(decision.id, decision.title, False, str(exc))
    return BulkResult(decision.id, decision.title, True, f"{decision.outcome.capitalize()}.")


# Delegation while away: the user names a delegate and a period; while it is in force the
# delegate sees and may decide what the user may decide (decision_check_allowed), each such
# decision recorded "on behalf of" the user. The rows are the record: revoking keeps the row.

DELEGATION_LONGEST = timedelta(days=366)


class DelegationInvalid(DecisionError):
    """A delegation that cannot be given or revoked; the message says why."""


@transaction.atomic
def delegation_give(
    *,
    user: AbstractBaseUser,
    delegate_username: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
) -> Delegation:
    """`user` names `delegate_username` their delegate from `starts_at` (a start already past
    means now) to `ends_at`."""
    if not user.is_authenticated:
        raise DecisionNotAllowed("Sign in to name a delegate.")
    delegate = _active_user(delegate_username)
    if delegate.pk == user.pk:
        raise DelegationInvalid("You cannot name yourself as your delegate.")
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise DelegationInvalid("The period needs a time zone.")
    starts_at = max(starts_at, timezone.now())
    if ends_at <= starts_at:
        raise DelegationInvalid("The period must end after it starts, and in the future.")
    if ends_at - starts_at > DELEGATION_LONGEST:
        raise DelegationInvalid(f"A delegation lasts at most {DELEGATION_LONGEST.days} days.")
    return Delegation.objects.create(
        user=user, delegate=delegate, starts_at=starts_at, ends_at=ends_at, reason=reason[:300]
    )


def _active_user(username: str) -> AbstractBaseUser:
    username = (username or "").strip()
    delegate = get_user_model().objects.filter(username=username, is_active=True).first()
    if delegate is None:
        raise DelegationInvalid(f"No active user named “{username[:150]}”.")
    return delegate


@transaction.atomic
def delegation_revoke(*, delegation_id: int, user: AbstractBaseUser) -> Delegation:
    """End a delegation now: by the user who gave it, or an administrator."""
    delegation = Delegation.objects.filter(id=delegation_id).first()
    may_revoke = delegation is not None and (
        delegation.user_id == user.pk or user.has_perm("decisions.change_delegation")
    )
    if not may_revoke:
        raise DecisionNotAllowed("Only the person who gave this delegation may revoke it.")
    now = timezone.now()
    revoked = Delegation.objects.filter(
        id=delegation_id, revoked_at__isnull=True, ends_at__gt=now
    ).update(revoked_at=now)
    delegation.refresh_from_db()
    if not revoked:
        raise DelegationInvalid("This delegation has already ended or been revoked.")
    return delegation
