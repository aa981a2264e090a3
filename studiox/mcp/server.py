"""The MCP tools (docs/api.md): the API's main actions for agents, whichever the transport.

Every tool runs the same selectors, services and permission checks as the REST API, and
answers with the same JSON shapes. The caller is the owner of an API token: on HTTP the
scope carries its user (`studiox.mcp.http`), on stdio the server is built for it
(`studiox.mcp.stdio`).
"""

import json
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import close_old_connections
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from rest_framework.exceptions import AuthenticationFailed

from decisions.selectors import decisions_pending_for
from missions.selectors import mission_get_for, mission_types
from missions.services import event_deliver, mission_start
from observations.selectors import mission_recent_observations
from studiox.api import permissions
from studiox.api.authentication import TokenOrBearerAuthentication
from studiox.api.exceptions import domain_error
from studiox.api.serializers import (
    DecisionSerializer,
    EventResultSerializer,
    MissionSerializer,
    MissionTypeSerializer,
    ObservationSerializer,
)
from studiox.safe_input import json_problem

USER_ID_SCOPE_KEY = "studiox.user_id"
MAX_RECENT_OBSERVATIONS = 200
MAX_DECISIONS = 100
MAX_KEY_LENGTH = 200  # as the API: idempotency keys, event names and keys

INSTRUCTIONS = """StudioX runs durable AI Missions. Call list_mission_types to see what can be
started and the JSON Schema of each input, start_mission to start one (pass an idempotency_key
to make retries safe), get_mission to follow it, list_pending_decisions for the approvals
waiting on your roles, and send_event to deliver an external event to waiting missions."""

T = TypeVar("T")


def token_user(key: str):
    """The active user owning API token `key`, or None (the REST API's own token rules)."""
    try:
        user, _ = TokenOrBearerAuthentication().authenticate_credentials(key)
    except AuthenticationFailed:
        return None
    return user


def in_django_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    """Run ORM code in Django's thread; stale connections are closed as a request would.
    Shared with `studiox.mcp.http`, whose token check reads the database too."""

    def with_connections(*args: Any) -> T:
        close_old_connections()
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return sync_to_async(with_connections, thread_sensitive=True)


def _refused(exc: Exception) -> ToolError:
    error = domain_error(exc)
    if error is None:
        raise exc
    message = error.detail
    if error.errors:
        message += " " + json.dumps(error.errors, sort_keys=True)
    return ToolError(message)


def _check_lengths(**values: str) -> None:
    """The API's length limits: a longer value is refused, never cut (two keys could merge)."""
    for name, value in values.items():
        if len(value) > MAX_KEY_LENGTH:
            raise ToolError(f"{name}: use at most {MAX_KEY_LENGTH} characters.")


def _check_safe(**arguments: Any) -> None:
    """The API body's limits on the arguments as one JSON document: no NUL characters (the
    database cannot store them), no nesting deeper than MAX_JSON_DEPTH."""
    problem = json_problem(arguments)
    if problem is not None:
        raise ToolError(f"{problem.path}: {problem.message}")


class StudioXTools:
    """The tools; `stdio_user_id` is the caller on stdio, where there is no HTTP request."""

    def __init__(self, stdio_user_id: int | None = None):
        self.stdio_user_id = stdio_user_id

    def caller_id(self, ctx: Context) -> int:
        request = ctx.request_context.request
        user_id = request.scope.get(USER_ID_SCOPE_KEY) if request is not None else None
        user_id = user_id or self.stdio_user_id
        if not user_id:
            raise ToolError("Not authenticated: pass an API token.")
        return user_id

    @staticmethod
    def _user(user_id: int):
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise ToolError("The token's user no longer exists or is inactive.")
        return user

    async def list_mission_types(self, ctx: Context) -> dict[str, Any]:
        """The mission types you can start, each with its version, title, description and the
        JSON Schema its input must match."""
        self.caller_id(ctx)

        def run() -> dict[str, Any]:
            return {"mission_types": MissionTypeSerializer(mission_types(), many=True).data}

        return await in_django_thread(run)()

    async def start_mission(
        self,
        type: str,
        input: dict[str, Any],
        ctx: Context,
        idempotency_key: str = "",
        priority: int = 0,
    ) -> dict[str, Any]:
        """Start a mission of `type` with `input` (matching the type's input schema). With an
        `idempotency_key`, repeating the call returns the first mission instead of a new one.
        A higher `priority` (-10 to 10) takes free concurrency slots and worker time first."""
        user_id = self.caller_id(ctx)

        def run() -> dict[str, Any]:
            try:
                _check_lengths(idempotency_key=idempotency_key)
                _check_safe(type=type, input=input, idempotency_key=idempotency_key)
                result = mission_start(
                    type=type,
                    input=input,
                    started_by=self._user(user_id),
                    idempotency_key=idempotency_key,
                    priority=priority,
                )
            except Exception as exc:
                raise _refused(exc) from exc
            return {"created": result.created, "mission": MissionSerializer(result.mission).data}

        return await in_django_thread(run)()

    async def get_mission(
        self, mission_id: str, ctx: Context, observations: int = 20
    ) -> dict[str, Any]:
        """Where a mission stands: status, its business outcome and one-line summary once it
        has them, current step, what it waits on and since when, its verdict or error, the
        mission that started it (parent) and those it started (children), and its most recent
        observations (the rail, in business terms), oldest first."""
        user_id = self.caller_id(ctx)
        limit = max(0, min(observations, MAX_RECENT_OBSERVATIONS))

        def run() -> dict[str, Any]:
            mission = mission_get_for(user=self._user(user_id), mission_id=mission_id)
            if mission is None:
                raise ToolError(f"No mission {mission_id} is visible to you.")
            recent = (
                mission_recent_observations(mission=mission, limit=limit, business=True)
                if limit
                else []
            )
            return {
                "mission": MissionSerializer(mission).data,
                "observations": ObservationSerializer(recent, many=True).data,
            }

        return await in_django_thread(run)()

    async def list_pending_decisions(self, ctx: Context) -> dict[str, Any]:
        """The pending decisions waiting on your roles, with their context."""
        user_id = self.caller_id(ctx)

        def run() -> dict[str, Any]:
            pending = decisions_pending_for(user=self._user(user_id))[:MAX_DECISIONS]
            return {"decisions": DecisionSerializer(pending, many=True).data}

        return await in_django_thread(run)()

    async def send_event(
        self,
        event: str,
        ctx: Context,
        key: str = "",
        payload: Any = None,
        idempotency_key: str = "",
    ) -> dict[str, Any]:
        """Deliver external event `event` (with correlation `key` and a JSON `payload`) to the
        missions waiting for it; kept for the first one that waits if none does yet. Needs the
        missions.add_event permission."""
        user_id = self.caller_id(ctx)

        def run() -> dict[str, Any]:
            user = self._user(user_id)
            if not permissions.can_send_events(user):
                raise ToolError(permissions.CANNOT_SEND_EVENTS)
            try:
                _check_lengths(event=event, key=key, idempotency_key=idempotency_key)
                _check_safe(event=event, key=key, payload=payload, idempotency_key=idempotency_key)
                if not event:
                    raise ToolError("event: this field may not be blank.")
                result = event_deliver(
                    event=event,
                    key=key,
                    payload=payload,
                    sent_by=user,
                    idempotency_key=idempotency_key,
                )
            except Exception as exc:
                raise _refused(exc) from exc
            return EventResultSerializer(result).data

        return await in_django_thread(run)()


def build_server(*, stdio_user_id: int | None = None) -> MCPServer:
    """A StudioX MCP server; on stdio, `stdio_user_id` is the authenticated caller."""
    server = MCPServer("studiox", title="StudioX", instructions=INSTRUCTIONS, version="1.0.0")
    tools = StudioXTools(stdio_user_id=stdio_user_id)
    for tool in (
        tools.list_mission_types,
        tools.start_mission,
        tools.get_mission,
        tools.list_pending_decisions,
        tools.send_event,
    ):
        server.add_tool(tool)
    return server
