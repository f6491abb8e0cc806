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

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts.models import InstagramAccount


def account_refresh_claim(
    *, account: InstagramAccount, now: datetime, statuses: Collection[str] | None = None
) -> datetime | None:
    """Claim ``account`` for one refresh; returns the claim's expiry, or None when
    someone else holds a live claim (or its status is not in ``statuses``). One
    conditional UPDATE: it matches only an unclaimed (or lapsed) row."""
    until = now + timedelta(seconds=settings.REFRESH_LOCK_SECONDS)
    rows = InstagramAccount.objects.filter(_claimable(now, statuses), pk=account.pk)
    if not rows.update(refresh_locked_until=until):
        return None
    return until


def _claimable(now: datetime, statuses: Collection[str] | None) -> Q:
    unclaimed = Q(refresh_locked_until__isnull=True) | Q(refresh_locked_until__lt=now)
    return unclaimed & Q(status__in=statuses) if statuses is not None else unclaimed


def accounts_refresh_claim(
    *, account_ids: Iterable[int], now: datetime, statuses: Collection[str]
) -> tuple[datetime, list[int]]:
    """Claim many accounts at once for a batch of refreshes: returns the claim's
    expiry and the ids it took (those unclaimed, in ``statuses``; the others are
    left to whoever holds them). PostgreSQL locks the matching rows (``SKIP
    LOCKED``: a row another claim is writing is simply not taken) and marks them in
    the same transaction; SQLite serialises the two statements' writers anyway."""
    until = now + timedelta(seconds=settings.REFRESH_LOCK_SECONDS)
    with transaction.atomic():
        rows = InstagramAccount.objects.filter(_claimable(now, statuses), pk__in=list(account_ids))
        taken = list(
            rows.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True)
        )
        if taken:
            rows.filter(pk__in=taken).update(refresh_locked_until=until)
    return until, taken


def accounts_refresh_release(*, account_ids: Iterable[int], claim: datetime) -> None:
    """Give a batch's claims back (those it still holds)."""
    InstagramAccount.objects.filter(pk__in=list(account_ids), refresh_locked_until=claim).update(
        refresh_locked_until=None
    )


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
