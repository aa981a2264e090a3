"""Collects each app's WebSocket routes and any ASGI apps mounted beside Django."""

from importlib import import_module

from django.urls import re_path

from studiox.websockets import NotFoundConsumer

WEBSOCKET_ROUTE_MODULES = ["observations.routing", "decisions.routing"]


def _collect_websocket_routes() -> list:
    routes = []
    for module_name in WEBSOCKET_ROUTE_MODULES:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        routes.extend(module.websocket_urlpatterns)
    return routes


# Last, and matching every path: an unknown path closes with 4404 instead of failing the
# handshake with a traceback (URLRouter raises when no route matches).
NOT_FOUND_ROUTE = re_path(r"", NotFoundConsumer.as_asgi(), name="ws-not-found")

websocket_urlpatterns = [*_collect_websocket_routes(), NOT_FOUND_ROUTE]


def http_application(django_app):
    """Django for every path; apps such as the MCP endpoint mount themselves in `studiox.mounts`.
    Every request body passes the size and time limits of `studiox.body_limit` first."""
    from studiox.body_limit import RequestBodyLimit
    from studiox.mounts import mount_http

    return RequestBodyLimit(mount_http(django_app))
