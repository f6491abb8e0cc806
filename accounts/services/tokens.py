"""The one write path for an account's token.

Every writer (sign-in, import, refresh) stores a token through ``token_store`` so
that the value, its expiry and its version change together in one transaction,
and the served copy in the cache is dropped as soon as that transaction commits.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import token_cache
from accounts.models import AccessToken, InstagramAccount


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
    newer one); it then returns None when another writer got there first.
    """
    now = timezone.now()
    issued_at = issued_at or now
    with transaction.atomic():
        existing = AccessToken.objects.filter(account=account)
        if expected_version is not None:
            probe = AccessToken(account=account)
            probe.value = access_token
            fields = {
                "ciphertext": probe.ciphertext,
                "issued_at": issued_at,
                "expires_at": expires_at,
                "version": F("version") + 1,
                "updated_at": now,
            }
            if permissions:
                fields["permissions"] = list(permissions)
            if refreshed:
                fields["refreshed_at"] = now
            updated = existing.filter(version=expected_version).update(**fields)
            if not updated:
                return None
            token = AccessToken.objects.get(account=account)
        else:
            token = existing.first() or AccessToken(account=account, version=0)
            token.value = access_token
            token.issued_at = issued_at
            token.expires_at = expires_at
            token.permissions = list(permissions) or token.permissions or []
            token.version += 1
            if refreshed:
                token.refreshed_at = now
            token.save()
        transaction.on_commit(lambda: token_cache.invalidate(account))
    return token
