"""Helpers shared by the refresh-engine tests (not a conftest: other engineers own those)."""

import hashlib
import hmac
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount
from tests import instagram_fakes as fakes

OLD_TOKEN = "IGAAtestLongLivedToken0000000001"


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
def ig():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def refresh_calls(rsps) -> list:
    return [c for c in rsps.calls if c.request.url.startswith(fakes.REFRESH_URL)]


def add_refresh_error(rsps, *, code=None, subcode=None, status=400, body=None, message=None):
    if body is None:
        body = fakes.graph_error(code, subcode=subcode, message=message)
    rsps.add(responses.GET, fakes.REFRESH_URL, json=body, status=status)


def token_of(account: InstagramAccount) -> AccessToken:
    return AccessToken.objects.get(account=account)


def set_token_times(account, *, age: timedelta, expires_in: timedelta, refreshed_ago=None):
    now = timezone.now()
    AccessToken.objects.filter(account=account).update(
        issued_at=now - age,
        expires_at=now + expires_in,
        refreshed_at=(now - refreshed_ago) if refreshed_ago is not None else None,
    )


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
