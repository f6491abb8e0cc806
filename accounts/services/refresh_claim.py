"""One refresh per account at a time: the claim on ``refresh_locked_until``, and
the one way the refresh engine writes an account (``save()`` under the row lock).

A refresh claims its account by moving ``refresh_locked_until`` forward in one
conditional ``UPDATE`` (the database locks the row and re-checks the condition,
so of two claims at once exactly one matches), never across the HTTP call, and
gives the claim back the same way when done. A killed worker's claim lapses
after ``REFRESH_LOCK_SECONDS``. The claim is no part of what is served, so it
bypasses ``save()`` and the token cache's receivers (one statement, no
invalidation); every other write goes through ``Model.save()`` so the receivers
see it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from accounts.models import InstagramAccount


def account_refresh_claim(
    *, account: InstagramAccount, now: datetime, statuses: Collection[str] | None = None
) -> datetime | None:
    """Claim ``account`` for one refresh; returns the claim's expiry, or None when
    someone else holds a live claim (or its status is not in ``statuses``). One
    conditional UPDATE: it matches only an unclaimed (or lapsed) row."""
    until = now + timedelta(seconds=settings.REFRESH_LOCK_SECONDS)
    rows = InstagramAccount.objects.filter(pk=account.pk).filter(
        Q(refresh_locked_until__isnull=True) | Q(refresh_locked_until__lt=now)
    )
    if statuses is not None:
        rows = rows.filter(status__in=statuses)
    if not rows.update(refresh_locked_until=until):
        return None
    return until


def account_refresh_release(*, account: InstagramAccount, claim: datetime) -> None:
    """Give the claim back, unless it already lapsed and someone else took it."""
    InstagramAccount.objects.filter(pk=account.pk, refresh_locked_until=claim).update(
        refresh_locked_until=None
    )


def account_update(*, account: InstagramAccount, **fields: object) -> None:
    """Write ``fields`` (and ``updated_at``) of ``account`` through ``save()`` on its
    freshly read, locked row (call inside a transaction): only those columns change,
    and the token cache's receivers see the write with the current slug. The
    caller's instance gets the new values too. An account deleted meanwhile (Meta's
    data-deletion callback) is left deleted."""
    try:
        row = InstagramAccount.objects.select_for_update().get(pk=account.pk)
    except InstagramAccount.DoesNotExist:
        row = None
    for name, value in fields.items():
        setattr(account, name, value)
        if row is not None:
            setattr(row, name, value)
    if row is not None:
        row.save(update_fields=[*fields, "updated_at"])
