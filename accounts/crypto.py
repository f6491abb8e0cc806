"""Tokens are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys, in order (MultiFernet: encrypt with the first, decrypt with any):
``TOKEN_ENCRYPTION_KEY`` (comma-separated Fernet keys, newest first), then a key
derived from ``SECRET_KEY``, then one derived from each of ``SECRET_KEY_FALLBACKS``.
Without ``TOKEN_ENCRYPTION_KEY`` the derived key encrypts, so a one-click deploy is
encrypted from the first token on; once it is set, the derived keys stay as
decrypt-only keys, so tokens stored before remain readable until
``manage.py rotate_token_key`` re-encrypts them under the first key. README
"Encryption keys" has the procedures (new key, leaked ``SECRET_KEY``).
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["InvalidToken", "decrypt", "encrypt", "rotate"]


def _derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"tokenagent-token-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_keys: tuple[str, ...]) -> MultiFernet:
    explicit = [k.strip().encode() for k in keys.split(",") if k.strip()]
    try:
        for key in explicit:
            Fernet(key)  # validates it
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEY must be comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')."
        ) from exc
    ordered = dict.fromkeys([*explicit, *(_derived_key(s) for s in secret_keys if s)])
    return MultiFernet([Fernet(k) for k in ordered])


def _current() -> MultiFernet:
    secret_keys = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    return _fernet(settings.TOKEN_ENCRYPTION_KEY, tuple(secret_keys))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Raises :class:`InvalidToken` when no configured key opens it."""
    return _current().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the newest key."""
    return _current().rotate(ciphertext.encode()).decode()
