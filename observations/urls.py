from django.urls import path

from observations import views

app_name = "observations"

urlpatterns = [
    path("rail/", views.rail, name="rail"),
]
