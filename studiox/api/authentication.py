"""API tokens, sent as `Authorization: Token <key>` (DRF's form) or `Bearer <key>` (what most
HTTP and MCP clients send)."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed


class TokenOrBearerAuthentication(TokenAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in (b"token", b"bearer"):
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: use 'Token <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise AuthenticationFailed(
                "Invalid token header: the key has invalid characters."
            ) from exc
        return self.authenticate_credentials(key)
