"""The rail page: every active mission the reader may see, and the live feed."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from observations import selectors

RAIL_PAGE_SIZE = 50
FEED_SIZE = 50


@login_required
@require_GET
def rail(request: HttpRequest) -> HttpResponse:
    user = request.user
    page = Paginator(selectors.rail_missions(user=user), RAIL_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"page": page, "counts": selectors.rail_status_counts(user=user)}
    if request.htmx or request.GET.get("partial") == "missions":
        return render(request, "observations/rail.html#missions", context)
    # The cursor is read before the feed: a line committed in between arrives twice at most
    # (the page drops repeats), never not at all.
    last_seq = selectors.observation_last_seq()
    # The rail speaks business terms; technical lines stay on each mission's technical view.
    scope = selectors.business_lines(selectors.observations_visible_to(user))
    context |= {
        "last_seq": last_seq,
        "latest": selectors.observations_latest(scope=scope, limit=FEED_SIZE),
        "feed_size": FEED_SIZE,
        "sees_all": selectors.user_sees_all_missions(user),
    }
    return render(request, "observations/rail.html", context)
