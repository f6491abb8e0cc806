"""A failing cache (Redis down) never breaks serving or a refresh: reads are misses
served from the database, writes and invalidations are skipped with a warning."""

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from accounts import token_cache
from accounts.services.refresh import token_refresh
from accounts.services.tokens import token_store
from tests import instagram_fakes as fakes

pytestmark = pytest.mark.django_db
TOKEN = "IGAAtestLongLivedToken0000000001"


@pytest.fixture
def redis_down(settings):
    """The cache points at a Redis port nobody listens on (connection refused)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    token_cache.clear_local()
    yield
    token_cache.clear_local()


def test_token_endpoints_serve_from_the_database(client, account, redis_down, caplog):
    for path in ("/token/acme.json", "/token/acme", "/token/acme.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert TOKEN in response.content.decode()
    assert "token cache read failed" in caplog.text


def test_token_writes_commit_and_invalidation_is_skipped(
    account, redis_down, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        token_store(
            account=account,
            access_token="IGAAnewTokenWhileRedisIsDown01",
            expires_at=timezone.now() + timedelta(days=60),
        )
    assert account.access_token.__class__.objects.get(account=account).value.startswith("IGAAnew")
    assert "token cache invalidation failed" in caplog.text


def test_refresh_succeeds_while_the_cache_is_down(
    account, redis_down, django_capture_on_commit_callbacks
):
    with responses.RequestsMock() as rsps:
        fakes.register_refresh(rsps)
        with django_capture_on_commit_callbacks(execute=True):
            attempt = token_refresh(account=account, trigger="command")
    assert attempt.outcome == "success"
