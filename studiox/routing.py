"""Collects each app's WebSocket routes and any ASGI apps mounted beside Django."""

from django.urls import re_path

from decisions import routing as decision_routing
from observations import routing as observation_routing
from studiox.body_limit import RequestBodyLimit
from studiox.mcp.http import mount_http
from studiox.websockets import NotFoundConsumer

# Last, and matching every path: an unknown path closes with 4404 instead of failing the
# handshake with a traceback (URLRouter raises when no route matches).
NOT_FOUND_ROUTE = re_path(r"", NotFoundConsumer.as_asgi(), name="ws-not-found")

websocket_urlpatterns = [
    *observation_routing.websocket_urlpatterns,
    *decision_routing.websocket_urlpatterns,
    NOT_FOUND_ROUTE,
]


def http_application(django_app):
    """Django for every path but /mcp, where the MCP endpoint is mounted (`studiox.mcp.http`).
    Every request body passes the size and time limits of `studiox.body_limit` first."""
    return RequestBodyLimit(mount_http(django_app))
