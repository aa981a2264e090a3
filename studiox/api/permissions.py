"""Who may do what through the API and the MCP server (one place, so both agree).

- list mission types, start a mission: any authenticated user (they become its requester);
- read a mission, its steps and rail: `missions_visible_to` (its requester, members of a role
  with a decision in it, or holders of `missions.view_mission`);
- cancel a mission: its requester, or an operator (`missions.change_mission`);
- retry a failed mission: an operator (`missions.change_mission`);
- send an event: holders of `missions.add_event` (integration accounts; superusers hold all);
- list and decide decisions: members of the decision's role, under `decision_decide`'s rules.

Staff status alone grants nothing here: it opens the admin site; API rights are permissions.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission

from missions.models import Mission
from missions.selectors import mission_can_cancel, mission_can_operate

SEND_EVENTS_PERMISSION = "missions.add_event"

CANNOT_CANCEL = (
    "Only the mission's requester or an operator (missions.change_mission) may cancel it."
)
CANNOT_RETRY = "Only an operator (missions.change_mission) may retry a mission."
CANNOT_SEND_EVENTS = f"Sending events needs the {SEND_EVENTS_PERMISSION} permission."


def can_send_events(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and user.has_perm(SEND_EVENTS_PERMISSION)


def can_cancel(user: AbstractBaseUser, mission: Mission) -> bool:
    return mission_can_cancel(user=user, mission=mission)


def can_retry(user: AbstractBaseUser, mission: Mission) -> bool:
    return mission_can_operate(user=user, mission=mission)


class CanSendEvents(BasePermission):
    message = CANNOT_SEND_EVENTS

    def has_permission(self, request, view) -> bool:
        return can_send_events(request.user)
