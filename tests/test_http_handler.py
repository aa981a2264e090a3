"""The web process runs each request's middleware and view in one thread (studiox.http_handler):
no middleware is adapted to the event loop, so a request is handed to a thread once, not once
per middleware hook."""

import threading

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.utils.deprecation import MiddlewareMixin

from studiox.http_handler import OneThreadPerRequestASGIHandler
from tests.support import asgi

pytestmark = pytest.mark.django_db(transaction=True)

RECORDER = "tests.test_http_handler.Recorder"
seen: list[tuple[str, bool, int]] = []


class Recorder(MiddlewareMixin):
    """Notes, at each hook, whether it was chained asynchronously and in which thread."""

    def process_request(self, request) -> None:
        seen.append(("request", iscoroutinefunction(self), threading.get_ident()))

    def process_response(self, request, response):
        seen.append(("response", iscoroutinefunction(self), threading.get_ident()))
        return response


def recorded_through(handler_class: type[ASGIHandler], settings) -> list[tuple[str, bool, int]]:
    settings.MIDDLEWARE = [RECORDER, *settings.MIDDLEWARE, RECORDER]
    seen.clear()
    answer = asgi.request("GET", "/api/mission-types/", app=handler_class())
    assert answer.status == 401  # through the whole chain
    return list(seen)


def test_every_middleware_hook_and_the_view_run_in_the_requests_one_thread(settings):
    hooks = recorded_through(OneThreadPerRequestASGIHandler, settings)

    assert [hook for hook, _, _ in hooks] == ["request", "request", "response", "response"]
    assert not any(chained_async for _, chained_async, _ in hooks)
    assert len({thread for _, _, thread in hooks}) == 1


def test_djangos_own_handler_chains_the_same_middleware_asynchronously(settings):
    """What the handler is for: under Django's own, the inner hooks each hop to a thread."""
    hooks = recorded_through(ASGIHandler, settings)

    assert any(chained_async for _, chained_async, _ in hooks)
