"""Fixtures of the accounts tests: Instagram's HTTP side as a ``responses`` mock
(with tests/conftest.py's ``agent_settings`` pointing the agent at it), the
signed-in owner, Celery run inline, an empty cache per test for the served URLs,
the embedded broker in a folder of the test's own, and the WSGI fast path beside
Django for the differential tests (``handlers``, ``clock``). The plain helpers beside
them are in connect_support.py (sign-in, connect, imports) and refresh_support.py
(the refresh engine)."""

import time

import pytest
import responses
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts import token_cache
from accounts.fastpath import FastPath
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import OWNER


@pytest.fixture
def ig():
    """Instagram's HTTP side; any request not registered fails the call."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def owner_client(client, db, agent_settings):
    """A browser signed in as the owner (a user linked to @acme_bakery)."""
    from tests.factories import make_account

    user = get_user_model().objects.create_user(username="instagram-owner")
    make_account(username=OWNER, slug="acme", user=user, ig_user_id=fakes.USER_ID)
    client.force_login(user)
    return client


@pytest.fixture
def eager_celery():
    """Run queued tasks inline; a retry re-runs at once. Errors are not propagated
    (Celery raises its Retry signal out of eager tasks when they are), so tests
    check results and effects."""
    from tokenagent.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def fresh_cache(settings, private_cache):
    """For the served URLs: each test gets empty caches of its own (test transactions
    roll back, but the served copies would otherwise outlive them), no domain list,
    and the default snippet name and Cache-Control lifetime."""
    settings.ALLOWED_DOMAINS = ""
    settings.JS_CONSTANT_NAME = "InstagramToken"
    settings.TOKEN_CACHE_MAX_AGE = 3600


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    """The embedded broker (whatever REDIS_URL the run uses), with writable folders."""
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
    }
    return tmp_path


# --- The fast path beside Django (test_fastpath_differential.py and its feed twin) ---


class Counting:
    """A WSGI app that counts the requests reaching it."""

    def __init__(self, app) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


class Clock:
    """The serving clock, the same for both paths, moved by hand (Cache-Control's
    max-age counts down each second)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def handlers(settings, monkeypatch, clock, fresh_cache):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    # As Django's test client does: a request must not close the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # One clock for both paths (Cache-Control max-age counts down each second).
    monkeypatch.setattr("accounts.selectors.serving.time", clock)
    django = WSGIHandler()
    counting = Counting(django)
    try:
        yield django, counting, FastPath(counting)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        token_cache.clear_local()
