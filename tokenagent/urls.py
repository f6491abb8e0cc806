"""The project's URLs: the admin, and every agent URL (accounts/urls.py) at the root."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
]

if settings.SANDBOX_ENABLED:
    # The fake Instagram, for running the whole flow offline (never with DEBUG off).
    urlpatterns.insert(0, path("sandbox/", include("accounts.sandbox.urls")))
