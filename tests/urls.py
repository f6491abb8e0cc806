"""Test URLconf: the agent's URLs with the sandbox Instagram always mounted, so a
live_server can play both sides of the OAuth flow."""

from django.urls import include, path

from tokenagent.urls import urlpatterns as agent_urlpatterns

urlpatterns = [path("sandbox/", include("accounts.sandbox.urls")), *agent_urlpatterns]
