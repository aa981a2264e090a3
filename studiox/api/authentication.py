"""API tokens, sent as `Authorization: Token <key>` (DRF's form) or `Bearer <key>` (what most
HTTP and MCP clients send). Invalid tokens count against the sending address: past
STUDIOX_TOKEN_FAILURE_LIMIT within the cool-off, its token requests get 429 without a look
at the key, so keys cannot be guessed at request speed."""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext as _
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from studiox.api.throttling import BadTokenThrottled
from studiox.lockout import bad_token_limit, client_address

User = get_user_model()
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
        token = _token_with_user(key)
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token


def _token_with_user(key: str) -> Token | None:
    """The token and its user in one plain SELECT, what DRF reads with
    `select_related("user").get(key=key)` at a quarter of the CPU: the ORM spent longer
    composing that query, on every API request, than the database spent answering it."""
    token_fields, user_fields = Token._meta.concrete_fields, User._meta.concrete_fields
    with connection.cursor() as cursor:
        cursor.execute(_token_query(), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    token = Token.from_db(
        connection.alias, [f.attname for f in token_fields], row[: len(token_fields)]
    )
    token.user = User.from_db(
        connection.alias, [f.attname for f in user_fields], row[len(token_fields) :]
    )
    return token


@functools.cache
def _token_query() -> str:
    quote = connection.ops.quote_name
    columns = [
        *(f"t.{quote(field.column)}" for field in Token._meta.concrete_fields),
        *(f"u.{quote(field.column)}" for field in User._meta.concrete_fields),
    ]
    owner = quote(Token._meta.get_field("user").column)
    return (
        f"SELECT {', '.join(columns)} FROM {quote(Token._meta.db_table)} t"
        f" JOIN {quote(User._meta.db_table)} u ON u.{quote(User._meta.pk.column)} = t.{owner}"
        f" WHERE t.{quote(Token._meta.pk.column)} = %s"
    )
