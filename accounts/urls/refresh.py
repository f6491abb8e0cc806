"""Refresh triggers: the signed hook for external schedulers, the owner's button."""

from django.urls import path

from accounts.views import refresh

urlpatterns = [
    path("hooks/refresh/", refresh.refresh_hook, name="refresh-hook"),
    path("accounts/<slug:slug>/refresh/", refresh.refresh_now, name="account-refresh"),
]
