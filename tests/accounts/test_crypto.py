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
