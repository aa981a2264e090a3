from django.urls import path

from decisions.consumers import DecisionQueueConsumer

websocket_urlpatterns = [path("ws/decisions/", DecisionQueueConsumer.as_asgi())]
