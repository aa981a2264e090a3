from django.urls import path

from decisions import views

app_name = "decisions"

urlpatterns = [
    path("decisions/", views.queue, name="queue"),
    path("decisions/<int:decision_id>/", views.detail, name="detail"),
    path("decisions/<int:decision_id>/decide/", views.decide, name="decide"),
    path("decisions/<int:decision_id>/claim/", views.claim, name="claim"),
]
