"""``/healthz`` for uptime monitors (exempt from the HTTPS redirect in settings)."""

from django.urls import path

from accounts.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
]
