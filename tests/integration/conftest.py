"""Fixtures of the integration tests: the browser tests' (tests/integration/browser_site.py):
the user's website on another origin, the agent restricted to it, and the Graph API and
jsDelivr answered in the closed network; the live agent with its feeds
(feed_browser.py); and the process tests': the test database's URL for processes,
a private Redis, the agent processes' environment on both, and the sandbox
Instagram in a process a test can stop."""

import shutil

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
