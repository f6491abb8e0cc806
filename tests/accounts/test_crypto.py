import pytest
from cryptography.fernet import Fernet

from accounts import crypto
from accounts.models import AccessToken


def test_token_is_encrypted_at_rest_and_round_trips(account):
    row = AccessToken.objects.get(account=account)
    assert "IGAA" not in row.ciphertext
    assert row.value == "IGAAtestLongLivedToken0000000001"
    assert row.masked == "IGAA…0001"
    assert "IGAAtest" not in repr(row)


def test_rotation_reencrypts_under_the_newest_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = old
    ciphertext = crypto.encrypt("IGAAsecret")
    settings.TOKEN_ENCRYPTION_KEY = f"{new},{old}"
    rotated = crypto.rotate(ciphertext)
    settings.TOKEN_ENCRYPTION_KEY = new
    assert crypto.decrypt(rotated) == "IGAAsecret"


def test_setting_an_encryption_key_later_keeps_tokens_readable_until_rotated(db, settings):
    """Tokens stored under the key derived from SECRET_KEY stay readable once
    TOKEN_ENCRYPTION_KEY is set (the derived key stays, decrypt-only, last), and
    rotate_token_key moves them all to the explicit key."""
    from accounts.services.tokens import tokens_rotate_key
    from tests.factories import make_account

    settings.TOKEN_ENCRYPTION_KEY = ""
    make_account(username="a_a", token="IGAAderivedKeyToken12345")
    explicit = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = explicit
    assert AccessToken.objects.get().value == "IGAAderivedKeyToken12345"
    result = tokens_rotate_key()
    assert result.rotated == 1 and result.unreadable == []
    ciphertext = AccessToken.objects.get().ciphertext
    assert Fernet(explicit.encode()).decrypt(ciphertext.encode()) == b"IGAAderivedKeyToken12345"
    # New tokens are written under the explicit key, not the derived one.
    assert Fernet(explicit.encode()).decrypt(crypto.encrypt("IGAAnew").encode()) == b"IGAAnew"


def test_a_leaked_secret_key_is_replaced_without_reconnecting_any_account(db, settings):
    """README "Rotating SECRET_KEY": the old key in SECRET_KEY_FALLBACKS keeps the
    tokens readable; rotate_token_key moves them under the new SECRET_KEY's key;
    then the fallback can go."""
    from accounts.services.tokens import tokens_rotate_key
    from tests.factories import make_account

    old = "the-leaked-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    settings.TOKEN_ENCRYPTION_KEY = ""
    settings.SECRET_KEY = old
    settings.SECRET_KEY_FALLBACKS = []
    make_account(username="a_a", token="IGAAstoredUnderOldKey123")
    settings.SECRET_KEY = "the-new-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    settings.SECRET_KEY_FALLBACKS = [old]
    assert AccessToken.objects.get().value == "IGAAstoredUnderOldKey123"
    assert tokens_rotate_key().rotated == 1
    settings.SECRET_KEY_FALLBACKS = []
    assert AccessToken.objects.get().value == "IGAAstoredUnderOldKey123"
    settings.SECRET_KEY = old
    with pytest.raises(crypto.InvalidToken):
        AccessToken.objects.get().value  # noqa: B018 (no longer under the leaked key)
