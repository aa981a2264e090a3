"""Every way people change a decision: decide, claim, release and reassign. What the engine
calls (open, outcome, expire, withdraw) and the lock order both sides keep are in
`decisions.waits`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from decisions.models import Decision, DecisionAudit
from decisions.trail import decision_audit, decision_hint
from missions.waits import mission_lock, mission_wake
from observations.services import observation_record

Status = Decision.Status
FINAL_ACTIONS = {"approved": "approved", "rejected": "rejected"}


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


def decision_check_allowed(*, decision: Decision, user: AbstractBaseUser) -> None:
    """Raise DecisionNotAllowed unless `user` may decide: a member of the role, not the
    mission's requester, and not the decider of another decision of the same mission."""
    if not user.is_authenticated or not user.groups.filter(id=decision.role_id).exists():
        raise DecisionNotAllowed(f"Only members of {decision.role.name} may decide this.")
    if decision.mission.started_by_id == user.id:
        raise DecisionNotAllowed("You started this mission, so someone else must decide it.")
    earlier = (
        Decision.objects.filter(mission_id=decision.mission_id, decided_by=user)
        .exclude(id=decision.id)
        .first()
    )
    if earlier is not None:
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
    decision_check_allowed(decision=decision, user=user)
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
    decision_audit(
        decision,
        FINAL_ACTIONS.get(outcome, "decided"),
        user=user,
        reason=comment,
        before={"status": "pending"},
        after={"status": status, "outcome": outcome},
    )
    who = user.get_username()
    observation_record(
        mission=decision.mission,
        kind="decision_made",
        step_name=decision.step_name,
        message=f"{decision.title}: {outcome} by {who}"
        + (f" — “{comment[:120]}”" if comment else ""),
        data={"outcome": outcome, "by": who, "role": decision.role.name},
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
