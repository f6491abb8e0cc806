"""Meta's deauthorize and data-deletion callbacks, and the deletion status page."""

from django.urls import path

from accounts.views import meta

urlpatterns = [
    path("instagram/deauthorize/", meta.deauthorize, name="meta-deauthorize"),
    path("instagram/data-deletion/", meta.data_deletion, name="meta-data-deletion"),
    path(
        # Codes are token_urlsafe(): a slug. Anything else is a 404 before any query.
        "instagram/data-deletion/<slug:code>/",
        meta.data_deletion_status,
        name="meta-data-deletion-status",
    ),
]
