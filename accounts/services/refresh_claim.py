"""One refresh per account at a time: the claim on ``refresh_locked_until``, and
the one way the refresh engine writes an account (``save()`` under the row lock).

A refresh claims its account by moving ``refresh_locked_until`` forward while it
holds the row lock of one short transaction (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions serialize writers), never across the
HTTP call, and gives the claim back when done. A killed worker's claim lapses
after ``REFRESH_LOCK_SECONDS``. Writes go through ``Model.save()`` so the token
cache's receivers see them.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import InstagramAccount


def _locked_row(
    *, account: InstagramAccount, rows: QuerySet[InstagramAccount]
) -> InstagramAccount | None:
    """The account's row, locked until the surrounding transaction ends (None when
    ``rows`` filters it out)."""
    return rows.select_for_update().filter(pk=account.pk).first()


def account_refresh_claim(
    *, account: InstagramAccount, now: datetime, statuses: Collection[str] | None = None
) -> datetime | None:
    """Claim ``account`` for one refresh; returns the claim's expiry, or None when
    someone else holds a live claim (or its status is not in ``statuses``). The row
    is read and written under its lock in one short transaction."""
    until = now + timedelta(seconds=settings.REFRESH_LOCK_SECONDS)
    rows = InstagramAccount.objects.filter(
        Q(refresh_locked_until__isnull=True) | Q(refresh_locked_until__lt=now)
    )
    if statuses is not None:
        rows = rows.filter(status__in=statuses)
    with transaction.atomic():
        row = _locked_row(account=account, rows=rows)
        if row is None:
            return None
        row.refresh_locked_until = until
        row.save(update_fields=["refresh_locked_until"])
    return until


def account_refresh_release(*, account: InstagramAccount, claim: datetime) -> None:
    """Give the claim back, unless it already lapsed and someone else took it."""
    with transaction.atomic():
        row = _locked_row(
            account=account, rows=InstagramAccount.objects.filter(refresh_locked_until=claim)
        )
        if row is not None:
            row.refresh_locked_until = None
            row.save(update_fields=["refresh_locked_until"])


def account_update(*, account: InstagramAccount, **fields: object) -> None:
    """Write ``fields`` (and ``updated_at``) of ``account`` through ``save()`` on its
    freshly read, locked row (call inside a transaction): only those columns change,
    and the token cache's receivers see the write with the current slug. The
    caller's instance gets the new values too. An account deleted meanwhile (Meta's
    data-deletion callback) is left deleted."""
    row = _locked_row(account=account, rows=InstagramAccount.objects.all())
    for name, value in fields.items():
        setattr(account, name, value)
        if row is not None:
            setattr(row, name, value)
    if row is not None:
        row.save(update_fields=[*fields, "updated_at"])
