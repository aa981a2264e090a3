"""ASGI entry point: HTTP through Django, WebSockets through Channels (same-origin only,
authenticated)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studiox.settings")
# Each request runs its sync code in a thread of its own: connections come from a pool
# (studiox.settings, STUDIOX_DB_POOL_SIZE), not one new connection per request.
os.environ.setdefault("STUDIOX_DB_POOL_SIZE", "8")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from studiox.http_handler import OneThreadPerRequestASGIHandler  # noqa: E402

django_asgi_app = OneThreadPerRequestASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from studiox.routing import http_application, websocket_urlpatterns  # noqa: E402
from studiox.websockets import SameOriginValidator  # noqa: E402

http_app = http_application(django_asgi_app)
application = ProtocolTypeRouter(
    {
        "http": http_app,
        # The MCP mount answers the server's start-up and shutdown (and stops its sessions).
        "lifespan": http_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
