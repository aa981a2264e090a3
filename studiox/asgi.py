"""ASGI entry point: HTTP through Django, WebSockets through Channels (same-origin only,
authenticated)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studiox.settings")
# Each request runs its sync code in a thread of its own: connections come from a pool
# (studiox.settings, STUDIOX_DB_POOL_SIZE), not one new connection per request.
os.environ.setdefault("STUDIOX_DB_POOL_SIZE", "8")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from studiox.routing import http_application, websocket_urlpatterns  # noqa: E402
from studiox.websockets import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application(django_asgi_app),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
