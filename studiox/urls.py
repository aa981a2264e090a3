from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from showcases.refund.views import refund_new
from studiox import views
from studiox.sign_in import AdminSignInForm, SignInView

# The admin's sign-in counts failures against the same limits as the app's.
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (JSON, files).
    path("favicon.ico", RedirectView.as_view(url=static("studiox/favicon.svg"), permanent=True)),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("refunds/new/", refund_new, name="refund_new"),
    # Each app owns its pages (knowledge has none: it is edited in the admin).
    path("", include("missions.urls")),
    path("", include("decisions.urls")),
    path("", include("observations.urls")),
    path("api/", include("studiox.api_urls")),
]
