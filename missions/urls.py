from django.urls import path

from missions import views

app_name = "missions"

urlpatterns = [
    path("missions/", views.mission_list, name="list"),
    path("missions/<uuid:mission_id>/", views.mission_detail, name="detail"),
    path("missions/<uuid:mission_id>/<slug:action>/", views.mission_operate, name="operate"),
]
