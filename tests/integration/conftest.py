"""Fixtures of the integration tests: the browser tests' (tests/integration/browser_site.py):
the user's website on another origin, the agent restricted to it, and the Graph API and
jsDelivr answered in the closed network; the live agent with its feeds
(feed_browser.py); and the process tests': the test database's URL for processes,
a private Redis, the agent processes' environment on both, and the sandbox
Instagram in a process a test can stop; the Heroku parity tests' add-ons: a fresh
database as the Postgres add-on provisions it, and the standalone sandbox."""

import os
import shutil
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from harness.processes import PrivateRedis
from harness.refresh import agent_env, database_url
from tests.integration.browser_site import agent, cdn, graph, site, token  # noqa: F401
from tests.integration.feed_browser import live_agent, other_site, own_cache, watch  # noqa: F401
from tests.integration.feed_support import StoppableSandbox


@pytest.fixture
def pg_url():
    """The test database's URL, for the agent's processes (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    return database_url(connection.settings_dict)


@pytest.fixture
def own_redis(tmp_path):
    """A private redis-server of this test's own (stopping it is part of some tests)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path, start_timeout=10).start()
    yield server
    server.stop()


@pytest.fixture
def agent_env_for(pg_url, own_redis, tmp_path):
    """``agent_env_for(instagram_url, **settings)``: the environment of the agent's
    processes for this test (harness/refresh.py ``agent_env``): the test database,
    the private Redis, a var/ folder of the test's own and the test settings' keys."""

    def make(instagram_url: str, **environment) -> dict[str, str]:
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return agent_env(
            database_url=pg_url,
            redis_url=own_redis.url,
            instagram_url=instagram_url,
            var_dir=var_dir,
            secret_key=settings.SECRET_KEY,
            token_encryption_key=settings.TOKEN_ENCRYPTION_KEY,
            **environment,
        )

    return make


@pytest.fixture
def stoppable_sandbox():
    """The standalone sandbox Instagram in its own process, which the test may stop."""
    sandbox = StoppableSandbox()
    yield sandbox
    sandbox.stop()


# --- The Heroku parity tests' add-ons (tests/integration/heroku_app.py) ------------------


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


@pytest.fixture
def heroku_postgres():
    """A fresh, empty database, as the add-on provisions; dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = _admin_url()
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc.__class__.__name__})")
    name = f"tokenagent_parity_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def sandbox():
    """The standalone sandbox Instagram, as its own process (the dyno's Instagram)."""
    from tests.sandbox_control import running_sandbox

    with running_sandbox(env={"DJANGO_SETTINGS_MODULE": "tests.settings"}) as control:
        yield control
