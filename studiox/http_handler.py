"""Django's ASGI handler, with each request's middleware and view run in one thread.

StudioX's views and middleware are synchronous. Under Django's own ASGI handler the middleware
chain is asynchronous, so every middleware's process_request and process_response, and then
the view, each hop from the event loop to a thread and back: some fifteen hand-overs per
request, each waiting to be scheduled on a busy machine. Here the chain is built synchronous,
as under WSGI, and the whole of it runs in the request's thread in one hop. The event loop
still reads bodies, streams responses and serves WebSockets and the MCP endpoint.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneThreadPerRequestASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        # Thread-sensitive: the request's own thread (ASGIHandler opens a ThreadSensitiveContext
        # per request), where the request_started and request_finished receivers run too.
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
