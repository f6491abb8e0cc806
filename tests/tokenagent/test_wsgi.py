"""tokenagent/wsgi.py: what reaches Django is the request, not the web process's
environment (Granian builds each environ on a copy of os.environ)."""

import io
import os

import pytest
from django.core.signals import request_started

from tokenagent import wsgi

pytestmark = pytest.mark.django_db


def granian_like_environ(path: str, **headers: str) -> dict:
    """An environ as Granian builds it: the process environment, the request on top."""
    scope = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        **headers,
    }
    return dict(os.environ) | scope


def seen_by_django(environ: dict) -> dict:
    seen: dict = {}

    def capture(sender, environ, **kwargs):
        seen.update(environ)

    request_started.connect(capture)
    try:
        application = wsgi.without_process_environment(
            wsgi.django_application, wsgi.process_only_keys(os.environ)
        )
        body = application(environ, lambda status, headers, exc_info=None: None)
        b"".join(body)
    finally:
        request_started.disconnect(capture)
    return seen


def test_the_process_environment_does_not_reach_django(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "process-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:db-password@db/agent")
    seen = seen_by_django(granian_like_environ("/healthz"))
    assert seen, "Django did not answer the request"
    assert "SECRET_KEY" not in seen
    assert "DATABASE_URL" not in seen
    assert not [value for value in seen.values() if "db-password" in str(value)]


def test_the_request_keeps_what_it_sent_even_named_like_a_process_variable(monkeypatch):
    monkeypatch.setenv("HTTP_X_CANARY", "from the process")
    monkeypatch.setenv("REMOTE_ADDR", "10.9.9.9")
    seen = seen_by_django(granian_like_environ("/healthz", HTTP_X_CANARY="from the request"))
    assert seen["HTTP_X_CANARY"] == "from the request"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["REQUEST_METHOD"] == "GET" and seen["PATH_INFO"] == "/healthz"


def test_the_served_application_is_scrubbed(monkeypatch):
    """The application the Procfile's server loads has the scrub between the fast
    path and Django: a variable of the process as it started is not seen."""
    key = next(iter(wsgi.process_only_keys(os.environ)))
    seen: dict = {}

    def capture(sender, environ, **kwargs):
        seen.update(environ)

    request_started.connect(capture)
    try:
        b"".join(wsgi.application(granian_like_environ("/healthz"), lambda *a, **k: None))
    finally:
        request_started.disconnect(capture)
    assert seen and key not in seen
