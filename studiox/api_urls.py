"""URLs under /api/ (docs/api.md); mounted by studiox.urls."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from studiox.api import decisions, events, missions
from studiox.api.schema import StudioXSchemaView

app_name = "api"

urlpatterns = [
    path("mission-types/", missions.MissionTypesView.as_view(), name="mission-types"),
    path("missions/", missions.MissionsView.as_view(), name="missions"),
    path("missions/<str:mission_id>/", missions.MissionView.as_view(), name="mission"),
    path("missions/<str:mission_id>/steps/", missions.MissionStepsView.as_view(), name="steps"),
    path(
        "missions/<str:mission_id>/observations/",
        missions.MissionObservationsView.as_view(),
        name="observations",
    ),
    path("missions/<str:mission_id>/cancel/", missions.MissionCancelView.as_view(), name="cancel"),
    path("missions/<str:mission_id>/retry/", missions.MissionRetryView.as_view(), name="retry"),
    path("events/", events.EventsView.as_view(), name="events"),
    path("decisions/", decisions.DecisionsView.as_view(), name="decisions"),
    path("decisions/<str:decision_id>/", decisions.DecisionView.as_view(), name="decision"),
    path(
        "decisions/<str:decision_id>/decide/",
        decisions.DecisionDecideView.as_view(),
        name="decide",
    ),
    path("schema/", StudioXSchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
