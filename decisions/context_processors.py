"""The top bar's count of pending decisions, on every page that extends base.html."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from decisions.selectors import decisions_pending_count


def pending_decisions(request: HttpRequest) -> dict:
    # Lazy: a page that does not show the top bar (the admin, an API error) runs no query.
    user = getattr(request, "user", None)
    return {
        "pending_decisions": SimpleLazyObject(
            lambda: decisions_pending_count(user=user) if user is not None else 0
        )
    }
