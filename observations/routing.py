"""WebSocket routes of the rail; studiox.routing collects `websocket_urlpatterns`."""

from django.urls import path

from observations.consumers import MissionObservationsConsumer, RailConsumer

websocket_urlpatterns = [
    path("ws/rail/", RailConsumer.as_asgi(), name="ws-rail"),
    path(
        "ws/missions/<uuid:mission_id>/", MissionObservationsConsumer.as_asgi(), name="ws-mission"
    ),
]
