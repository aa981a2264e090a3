"""Django's ASGI handler, with each request's middleware and view run in one thread.

StudioX's views and middleware are synchronous. Under Django's own ASGI handler the middleware
chain is asynchronous, so every middleware's process_request and process_response, and then
the view, each hop from the event loop to a thread and back: some fifteen hand-overs per
request, each waiting to be scheduled on a busy machine. Here the chain is built synchronous,
as under WSGI, and the whole of it runs in the request's thread in one hop. The event loop
still reads bodies, streams responses and serves WebSockets and the MCP endpoint.

A request still has a thread to itself for as long as it runs, but threads are kept and reused:
Django's handler started a new thread for every request and joined it at the end, a seventh
of a web process's CPU under load, and on the request's own path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

KEPT_IDLE_THREADS = 32  # more are made for a burst of requests and ended after it


class OneThreadPerRequestASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched by the event loop only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # One thread, the request's alone until it ends (what a ThreadSensitiveContext of
        # its own gives), taken from the idle ones.
        thread = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < KEPT_IDLE_THREADS:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        # Thread-sensitive: the request's own thread (ASGIHandler opens a ThreadSensitiveContext
        # per request), where the request_started and request_finished receivers run too.
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
