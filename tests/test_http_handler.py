"""The web process runs each request's middleware and view in one thread (studiox.http_handler):
no middleware is adapted to the event loop, so a request is handed to a thread once, not once
per middleware hook. Threads are kept from request to request, one request at a time each."""

import threading

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
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


together = threading.Barrier(2, timeout=10)


class Together(MiddlewareMixin):
    """Holds each request until another one is in flight too."""

    def process_request(self, request) -> None:
        together.wait()


def test_a_thread_is_kept_for_the_next_request_with_the_requests_signals(settings):
    settings.MIDDLEWARE = [RECORDER, *settings.MIDDLEWARE]
    handler = OneThreadPerRequestASGIHandler()
    signalled: list[int] = []

    def note_thread(**kwargs) -> None:
        signalled.append(threading.get_ident())

    seen.clear()
    request_started.connect(note_thread)
    request_finished.connect(note_thread)
    try:
        for _ in range(2):
            assert asgi.request("GET", "/api/mission-types/", app=handler).status == 401
    finally:
        request_started.disconnect(note_thread)
        request_finished.disconnect(note_thread)
    threads = {thread for _, _, thread in seen}
    assert len(threads) == 1  # both requests, one after the other, in one kept thread
    assert set(signalled) == threads and len(signalled) == 4  # connections handled there


def test_requests_in_flight_at_once_each_have_a_thread_of_their_own(settings):
    settings.MIDDLEWARE = [RECORDER, "tests.test_http_handler.Together", *settings.MIDDLEWARE]
    handler = OneThreadPerRequestASGIHandler()
    seen.clear()
    answers: list[int | None] = []

    def one_request() -> None:
        answers.append(asgi.request("GET", "/api/mission-types/", app=handler).status)

    clients = [threading.Thread(target=one_request) for _ in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert answers == [401, 401]  # neither waited for the other's thread: no broken barrier
    assert len({thread for hook, _, thread in seen if hook == "request"}) == 2
