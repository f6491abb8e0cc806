"""accounts/services/tokens.py: the one token write path and key rotation."""

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from accounts import crypto
from accounts.models import AccessToken
from accounts.services import tokens
from tests.accounts.connect_support import database_dump
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


# --- Key rotation --------------------------------------------------------------------------------


def test_rotation_re_encrypts_under_the_newest_key(settings):
    old = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = old
    make_account(username="a_a", token="IGAAfirstToken1234567")
    make_account(username="b_b", token="IGAAsecondToken123456")
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = f"{new},{old}"
    result = tokens.tokens_rotate_key()
    assert result.rotated == 2 and result.unreadable == []
    settings.TOKEN_ENCRYPTION_KEY = new  # the old key can go now
    values = sorted(t.value for t in AccessToken.objects.all())
    assert values == ["IGAAfirstToken1234567", "IGAAsecondToken123456"]
    assert "IGAAfirstToken" not in database_dump()


def test_rotation_reports_tokens_no_key_opens(settings):
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    make_account(username="a_a", token="IGAAfirstToken1234567")
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    result = tokens.tokens_rotate_key()
    assert result.rotated == 0 and result.unreadable == ["a-a"]
    with pytest.raises(crypto.InvalidToken):
        AccessToken.objects.get().value  # noqa: B018


def test_a_write_expecting_an_older_version_changes_nothing(account):
    stored = AccessToken.objects.get(account=account)
    expires = timezone.now() + timedelta(days=60)
    stale = tokens.token_store(
        account=account,
        access_token="IGAAstaleWriterToken123",
        expires_at=expires,
        expected_version=stored.version - 1,
    )
    assert stale is None
    after = AccessToken.objects.get(account=account)
    assert (after.ciphertext, after.version) == (stored.ciphertext, stored.version)
    fresh = tokens.token_store(
        account=account,
        access_token="IGAAcurrentWriterToken1",
        expires_at=expires,
        refreshed=True,
        expected_version=stored.version,
    )
    assert fresh is not None
    assert fresh.version == stored.version + 1 and fresh.refreshed_at is not None
    assert AccessToken.objects.get(account=account).value == "IGAAcurrentWriterToken1"
    assert AccessToken.objects.get(account=account).permissions == ["instagram_business_basic"]


def test_rotation_drops_served_copies_so_the_old_key_can_go(
    client, settings, django_capture_on_commit_callbacks
):
    old = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = old
    make_account(username="a_a", slug="shop", token="IGAAservedToken12345678")
    assert client.get("/token/shop.json").json()["token"] == "IGAAservedToken12345678"
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = f"{new},{old}"
    with django_capture_on_commit_callbacks(execute=True):
        assert tokens.tokens_rotate_key().rotated == 1
    settings.TOKEN_ENCRYPTION_KEY = new
    assert client.get("/token/shop.json").json()["token"] == "IGAAservedToken12345678"
