"""The site's URLconf: the admin, the agent (accounts.urls), /favicon.ico, and the
sandbox Instagram when it is enabled."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest
from django.urls import include, path
from django.views.decorators.http import require_safe

FAVICON = "accounts/favicon.ico"


@require_safe
def favicon(request: HttpRequest) -> FileResponse:
    """The icon browsers ask for at /favicon.ico (pages also link its static copy),
    from the app's static files, so it needs no collectstatic."""
    found = finders.find(FAVICON)
    if not isinstance(found, str):
        raise Http404("no favicon among the static files")
    response = FileResponse(open(found, "rb"), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("accounts.urls")),
]

if settings.SANDBOX_ENABLED:
    # The fake Instagram, for running the whole flow offline (never with DEBUG off).
    urlpatterns.insert(0, path("sandbox/", include("accounts.sandbox.urls")))
