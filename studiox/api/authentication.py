"""API tokens, sent as `Authorization: Token <key>` (DRF's form) or `Bearer <key>` (what most
HTTP and MCP clients send). Invalid tokens count against the sending address: past
STUDIOX_TOKEN_FAILURE_LIMIT within the cool-off, its token requests get 429 without a look
at the key, so keys cannot be guessed at request speed."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from studiox.api.throttling import BadTokenThrottled
from studiox.lockout import bad_token_limit, client_address

INVALID_CHARACTERS = "Invalid token header: the key has invalid characters."


class TokenOrBearerAuthentication(TokenAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in (b"token", b"bearer"):
            return None
        limit, address = bad_token_limit(), client_address(request)
        wait = limit.wait(address)
        if wait is not None:
            raise BadTokenThrottled(wait)
        try:
            return self._authenticate_parts(parts)
        except AuthenticationFailed:
            wait = limit.record(address)
            if wait is not None:
                raise BadTokenThrottled(wait) from None
            raise

    def _authenticate_parts(self, parts: list[bytes]):
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: use 'Token <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise AuthenticationFailed(INVALID_CHARACTERS) from exc
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        # Keys are printable ASCII; a control character (NUL) must not reach the database.
        if not key or not all("!" <= char <= "~" for char in key):
            raise AuthenticationFailed(INVALID_CHARACTERS)
        return super().authenticate_credentials(key)
