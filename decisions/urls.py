from django.urls import path

from decisions import views

app_name = "decisions"

urlpatterns = [
    path("decisions/", views.queue, name="queue"),
    path("decisions/bulk/", views.bulk, name="bulk"),
    path("decisions/delegations/", views.delegations, name="delegations"),
    path(
        "decisions/delegations/<int:delegation_id>/revoke/",
        views.delegation_revoke,
        name="delegation_revoke",
    ),
    path("decisions/pending-count/", views.pending_count, name="pending_count"),
    path("decisions/<int:decision_id>/", views.detail, name="detail"),
    path("decisions/<int:decision_id>/decide/", views.decide, name="decide"),
    path("decisions/<int:decision_id>/audit.csv", views.audit_csv, name="audit_csv"),
    path("decisions/<int:decision_id>/claim/", views.claim, name="claim"),
]
