"""URLconf of ``manage.py sandbox_server``: only the sandbox, under the same prefix."""

from django.urls import include, path

urlpatterns = [path("sandbox/", include("accounts.sandbox.urls"))]
