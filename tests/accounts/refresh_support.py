"""Helpers shared by the refresh-engine tests (their fixtures are in tests/accounts/conftest.py)."""

import hashlib
import hmac
from datetime import timedelta

import responses
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount
from tests import instagram_fakes as fakes

OLD_TOKEN = "IGAAtestLongLivedToken0000000001"


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
