"""StudioX's own models: only what no app owns."""

from rest_framework.authtoken.models import TokenProxy

TOKEN_PREFIX_LENGTH = 6


class ApiToken(TokenProxy):
    """An API token as the admin shows it: named by its user and the key's first characters.

    Everything the admin prints about an object (titles, breadcrumbs, messages, the deletion
    summary, the "Recent actions" log kept in the database) comes from `str()`, and a token's
    own `str()` is its whole key, which works as a password.
    """

    class Meta:
        proxy = True
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    @property
    def key_prefix(self) -> str:
        return f"{self.key[:TOKEN_PREFIX_LENGTH]}…"

    def __str__(self) -> str:
        return f"{self.user} ({self.key_prefix})"
