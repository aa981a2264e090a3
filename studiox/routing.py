"""Collects each app's WebSocket routes and any ASGI apps mounted beside Django."""

from importlib import import_module

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


websocket_urlpatterns = _collect_websocket_routes()


def http_application(django_app):
    """Django for every path; apps such as the MCP endpoint mount themselves in `studiox.mounts`."""
    try:
        from studiox.mounts import mount_http
    except ModuleNotFoundError:
        return django_app
    return mount_http(django_app)
