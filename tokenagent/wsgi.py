"""The WSGI application the web server loads: Django's handler behind the token
fast path (``accounts.fastpath``), which answers the public token reads from the
served entries and hands every other request to Django unchanged.

Granian builds each request's environ on top of a copy of the process environment
(``SECRET_KEY``, ``DATABASE_URL`` with its password, ...), so Django would see them in
``request.META``, where an error page or an error reporter shows it. What reaches
Django is the request alone: the process's own variables are taken out first."""

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenagent.settings")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# What a request itself may set (PEP 3333's CGI variables, HTTP_* headers, wsgi.*):
# never taken out, even when a process variable happens to have the same name.
REQUEST_KEYS = frozenset(
    "REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING CONTENT_TYPE CONTENT_LENGTH "
    "SERVER_NAME SERVER_PORT SERVER_PROTOCOL SERVER_SOFTWARE GATEWAY_INTERFACE "
    "REMOTE_ADDR REMOTE_HOST REMOTE_PORT REMOTE_USER AUTH_TYPE HTTPS REQUEST_URI RAW_URI".split()
)


def process_only_keys(environment: dict[str, str] | os._Environ[str]) -> frozenset[str]:
    """The process variables that no request sets."""
    return frozenset(
        key
        for key in environment
        if key not in REQUEST_KEYS and not key.startswith(("HTTP_", "wsgi."))
    )


def without_process_environment(app: WSGIApp, keys: frozenset[str]) -> WSGIApp:
    """``app`` called with ``keys`` taken out of each request's environ."""

    def scrubbed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for key in keys:
            environ.pop(key, None)
        return app(environ, start_response)

    return scrubbed


django_application = get_wsgi_application()

from accounts.fastpath import FastPath  # noqa: E402 (needs the apps loaded)

application = FastPath(
    without_process_environment(django_application, process_only_keys(os.environ))
)
