"""Tokens are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

``TOKEN_ENCRYPTION_KEY`` holds one or more comma-separated Fernet keys, newest
first (MultiFernet: encrypt with the first, decrypt with any, so keys can be
rotated with ``manage.py rotate_token_key``). Without it a key is derived from
``SECRET_KEY``, so a one-click deploy is encrypted from the first token on.
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
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    raw = [k.strip() for k in keys.split(",") if k.strip()]
    try:
        fernets = [Fernet(k.encode()) for k in raw] or [Fernet(_derived_key(secret_key))]
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEY must be comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')."
        ) from exc
    return MultiFernet(fernets)


def _current() -> MultiFernet:
    return _fernet(settings.TOKEN_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Raises :class:`InvalidToken` when no configured key opens it."""
    return _current().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the newest key."""
    return _current().rotate(ciphertext.encode()).decode()
