"""Static files under ASGI, read without holding up the event loop and without the warning
Django gives for a synchronous file iterator (it would read the whole file into memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from whitenoise.middleware import WhiteNoiseFileResponse, WhiteNoiseMiddleware

CHUNK_BYTES = 256 * 1024


async def read_in_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=False)
    while chunk := await read(CHUNK_BYTES):
        yield chunk


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, whose file responses stream asynchronously when served over ASGI."""

    def __call__(self, request):
        response = super().__call__(request)
        streams_a_file = (
            isinstance(response, WhiteNoiseFileResponse) and response.file_to_stream is not None
        )
        if streams_a_file and isinstance(request, ASGIRequest):
            # The file stays registered for closing when the response is done.
            response.streaming_content = read_in_chunks(response.file_to_stream)
        return response
