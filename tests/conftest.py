"""Shared fixtures, and the guard that makes CI fail when a test layer it needs
(PostgreSQL, Redis, a real worker, a browser) did not run.

CI sets TOKENAGENT_REQUIRE_LAYERS=postgres,redis,worker,browser; a layer counts
as run when at least one test carrying its marker passed (not skipped)."""

import os
import uuid

import pytest

LAYERS = ("postgres", "redis", "worker", "browser")
_passed_layers: set[str] = set()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        for layer in LAYERS:
            if layer in report.keywords:
                _passed_layers.add(layer)


def pytest_sessionfinish(session, exitstatus):
    required = [x for x in os.environ.get("TOKENAGENT_REQUIRE_LAYERS", "").split(",") if x]
    if not required or session.config.option.collectonly:
        return
    # Only judge a whole-suite run; a run of selected tests is a developer's business.
    if session.config.args and session.config.args != ["tests"]:
        return
    missing = [layer for layer in required if layer not in _passed_layers]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if missing:
        if reporter:
            reporter.write_line(
                f"REQUIRED TEST LAYERS DID NOT RUN: {', '.join(missing)} "
                "(TOKENAGENT_REQUIRE_LAYERS)",
                red=True,
                bold=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.write_line(f"Test layers that ran: {', '.join(sorted(_passed_layers))}")


@pytest.fixture
def account(db):
    """An active account with a valid 8-day-old long-lived token."""
    from tests.factories import make_account

    return make_account(username="acme_bakery", slug="acme")


@pytest.fixture
def cafe(db):
    """An account Meta's callbacks name: Instagram user 111, app-scoped id 999."""
    from tests.factories import make_account

    return make_account(username="cafe_shop", slug="cafe", ig_user_id="111", app_scoped_id="999")


@pytest.fixture
def agent_settings(settings, private_cache):
    """Real-Instagram settings pointed at tests/instagram_fakes.py, one owner
    (@acme_bakery), a private cache."""
    from tests import instagram_fakes as fakes

    settings.INSTAGRAM_APP_ID = fakes.APP_ID
    settings.INSTAGRAM_APP_SECRET = fakes.APP_SECRET
    settings.INSTAGRAM_AUTHORIZE_URL = fakes.AUTHORIZE_URL
    settings.INSTAGRAM_API_URL = fakes.API
    settings.INSTAGRAM_GRAPH_URL = fakes.GRAPH
    settings.INSTAGRAM_GRAPH_VERSION = fakes.VERSION
    settings.INSTAGRAM_SCOPES = ["instagram_business_basic"]
    settings.SANDBOX_ENABLED = False
    settings.OWNER_INSTAGRAM_USERNAMES = [fakes.OWNER]
    settings.HIDE_HELP_PAGES = False
    settings.ALLOWED_DOMAINS = ""
    return settings


@pytest.fixture
def private_cache(settings):
    """Empty in-memory caches of this test's own, one per alias the settings define
    (served token copies and rate-limit counters would otherwise leak between tests)."""
    settings.CACHES = {
        alias: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{alias}-{uuid.uuid4()}",
        }
        for alias in settings.CACHES
    }


@pytest.fixture
def staff_client(client, django_user_model):
    """A browser signed in as a staff user (an owner without an Instagram account)."""
    user = django_user_model.objects.create_user(username="owner", is_staff=True)
    client.force_login(user)
    return client


pytest_plugins = ["tests.browser", "tests.sandbox_control", "tests.feed_support"]
