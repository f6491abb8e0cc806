"""The one write path for an account's token, and re-encryption under a new key.

Every writer (sign-in, import, refresh) stores a token through ``token_store`` so
that the value, its expiry and its version change together in one transaction.
Rows are written with ``Model.save()``: the receivers in ``accounts/token_cache.py``
drop the served copy once the transaction commits.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts import crypto
from accounts.models import AccessToken, InstagramAccount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotateResult:
    rotated: int
    unreadable: list[str]


def token_store(
    *,
    account: InstagramAccount,
    access_token: str,
    expires_at: datetime,
    issued_at: datetime | None = None,
    permissions: list[str] | tuple[str, ...] = (),
    refreshed: bool = False,
    expected_version: int | None = None,
) -> AccessToken | None:
    """Create or replace ``account``'s token.

    With ``expected_version`` the write happens only if the stored token still has
    that version (a refresh that started from an older token must not overwrite a
    newer one); it then returns None when another writer got there first. The row
    is locked while it is compared and written (PostgreSQL ``FOR UPDATE``; SQLite's
    IMMEDIATE transactions serialise writers anyway).
    """
    now = timezone.now()
    with transaction.atomic():
        # The account comes along (unlocked), so the cache's receiver knows its slug
        # without a query of its own.
        rows = AccessToken.objects.select_for_update(of=("self",)).select_related("account")
        try:
            token = rows.get(account=account)
        except AccessToken.DoesNotExist:
            token = None
        if expected_version is not None and (token is None or token.version != expected_version):
            return None
        token = token or AccessToken(account=account, version=0)
        token_apply(
            token,
            access_token=access_token,
            expires_at=expires_at,
            issued_at=issued_at or now,
            permissions=permissions,
            refreshed_at=now if refreshed else None,
        )
        token.save()
    return token


def token_apply(
    token: AccessToken,
    *,
    access_token: str,
    expires_at: datetime,
    issued_at: datetime,
    permissions: list[str] | tuple[str, ...] = (),
    refreshed_at: datetime | None = None,
) -> None:
    """Put a new grant on ``token`` (unsaved) and bump its version: the one place
    that says what storing a token changes (``token_store``, and a batch of
    refreshes that saves its tokens at once)."""
    token.value = access_token
    token.issued_at = issued_at
    token.expires_at = expires_at
    token.permissions = list(permissions) or token.permissions or []
    token.version += 1
    if refreshed_at is not None:
        token.refreshed_at = refreshed_at


def tokens_rotate_key() -> RotateResult:
    """Re-encrypt every stored token under the newest key (the first of
    ``TOKEN_ENCRYPTION_KEY``, else the one derived from ``SECRET_KEY``). Each row is
    rewritten only if it did not change meanwhile (a refresh wins)."""
    rotated = 0
    unreadable = []
    for token in AccessToken.objects.select_related("account").order_by("pk"):
        try:
            new = crypto.rotate(token.ciphertext)
        except crypto.InvalidToken:
            unreadable.append(token.account.slug)
            continue
        with transaction.atomic():
            current = AccessToken.objects.select_for_update().filter(pk=token.pk).first()
            if current is None or current.ciphertext != token.ciphertext:
                continue
            # Saved, not updated: served entries hold the ciphertext and must go, or
            # an entry written under the old key outlives that key's removal.
            current.ciphertext = new
            current.save(update_fields=["ciphertext"])
        rotated += 1
    logger.info("rotated %d token(s); %d unreadable", rotated, len(unreadable))
    return RotateResult(rotated=rotated, unreadable=unreadable)
