"""URLs under /api/ (docs/api.md); mounted by studiox.urls."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from studiox.api import views
from studiox.api.decision_views import DecisionDecideView, DecisionsView, DecisionView
from studiox.api.schema import StudioXSchemaView

app_name = "api"

urlpatterns = [
    path("mission-types/", views.MissionTypesView.as_view(), name="mission-types"),
    path("missions/", views.MissionsView.as_view(), name="missions"),
    path("missions/<str:mission_id>/", views.MissionView.as_view(), name="mission"),
    path("missions/<str:mission_id>/steps/", views.MissionStepsView.as_view(), name="steps"),
    path(
        "missions/<str:mission_id>/observations/",
        views.MissionObservationsView.as_view(),
        name="observations",
    ),
    path("missions/<str:mission_id>/cancel/", views.MissionCancelView.as_view(), name="cancel"),
    path("missions/<str:mission_id>/retry/", views.MissionRetryView.as_view(), name="retry"),
    path("events/", views.EventsView.as_view(), name="events"),
    path("decisions/", DecisionsView.as_view(), name="decisions"),
    path("decisions/<str:decision_id>/", DecisionView.as_view(), name="decision"),
    path("decisions/<str:decision_id>/decide/", DecisionDecideView.as_view(), name="decide"),
    path("schema/", StudioXSchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
