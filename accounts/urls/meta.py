"""Meta's deauthorize and data-deletion callbacks, and the deletion status page."""

from django.urls import path

from accounts.views import meta

urlpatterns = [
    path("instagram/deauthorize/", meta.deauthorize, name="meta-deauthorize"),
    path("instagram/data-deletion/", meta.data_deletion, name="meta-data-deletion"),
    path(
        "instagram/data-deletion/<str:code>/",
        meta.data_deletion_status,
        name="meta-data-deletion-status",
    ),
]
