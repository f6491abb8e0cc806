"""Reads about the refresher: what is due, its heartbeat, each account's health.
The decisions themselves are :mod:`accounts.refresh_policy`'s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount, RefreshAttempt, RefresherHeartbeat
from accounts.refresh_policy import (
    HEALTH_STATES,
    MIN_TOKEN_AGE,
    account_health,
    token_is_due,
    token_next_refresh_at,
)
from accounts.refresh_policy import heartbeat_is_stale as _stale


def heartbeat_last() -> RefresherHeartbeat | None:
    return RefresherHeartbeat.objects.order_by("-ran_at").first()


def heartbeat_is_stale(*, now: datetime | None = None) -> bool:
    """True when the periodic job has not run for longer than twice its period."""
    last = heartbeat_last()
    return _stale(last_run=last.ran_at if last else None, now=now or timezone.now())


def accounts_due_for_refresh(
    *, now: datetime | None = None, include_cooling_down: bool = False
) -> list[InstagramAccount]:
    """Accounts whose token :func:`token_is_due` now, oldest expiry first.

    Beat leaves out accounts another refresh holds (``refresh_locked_until`` in the
    future) and accounts that failed within ``REFRESH_FAILURE_COOLDOWN_SECONDS``
    (their task is still retrying with backoff; a second chain would only double
    the calls). The database narrows the candidates; :func:`token_is_due` decides.
    """
    now = now or timezone.now()
    candidates = (
        InstagramAccount.objects.filter(
            status=InstagramAccount.Status.ACTIVE,
            access_token__issued_at__lte=now - MIN_TOKEN_AGE,
            access_token__expires_at__gt=now,
        )
        .filter(Q(refresh_locked_until__isnull=True) | Q(refresh_locked_until__lt=now))
        .select_related("access_token")
        .defer("access_token__ciphertext")
        .order_by("access_token__expires_at", "pk")
    )
    if not include_cooling_down:
        cooldown = timedelta(seconds=settings.REFRESH_FAILURE_COOLDOWN_SECONDS)
        candidates = candidates.filter(
            Q(last_error_at__isnull=True) | Q(last_error_at__lt=now - cooldown)
        )
    return [a for a in candidates if token_is_due(token=a.access_token, account=a, now=now)]


def next_refresh_at(*, account: InstagramAccount) -> datetime | None:
    """When the schedule will next refresh ``account`` (None: it will not)."""
    if account.status != InstagramAccount.Status.ACTIVE:
        return None
    token = AccessToken.objects.filter(account=account).first()
    if token is None:
        return None
    return token_next_refresh_at(token=token, account=account)


def accounts_health(*, now: datetime | None = None) -> dict[str, str]:
    """Every account's health by slug (never a token)."""
    now = now or timezone.now()
    accounts = InstagramAccount.objects.only("slug", "status").order_by("slug")
    expiries = dict(AccessToken.objects.values_list("account_id", "expires_at"))
    result = {}
    for account in accounts:
        expires_at = expiries.get(account.pk)
        token = AccessToken(account_id=account.pk, expires_at=expires_at) if expires_at else None
        result[account.slug] = account_health(account=account, token=token, now=now)
    return result


def health_counts(states: Iterable[str]) -> dict[str, int]:
    """How many accounts are in each health state (every state listed, zeros too)."""
    counts = dict.fromkeys(HEALTH_STATES, 0)
    for state in states:
        counts[state] += 1
    return counts


@dataclass(frozen=True)
class HeartbeatStatus:
    last_run: datetime | None
    age_seconds: int | None
    stale: bool
    period_seconds: int


def heartbeat_status(*, now: datetime | None = None) -> HeartbeatStatus:
    now = now or timezone.now()
    last = heartbeat_last()
    last_run = last.ran_at if last else None
    return HeartbeatStatus(
        last_run=last_run,
        age_seconds=int((now - last_run).total_seconds()) if last_run else None,
        stale=_stale(last_run=last_run, now=now),
        period_seconds=settings.REFRESH_TICK_SECONDS,
    )


@dataclass(frozen=True)
class AccountRefreshInfo:
    """What the account page shows about refreshing (no token value)."""

    token: AccessToken | None
    health: str
    expired: bool
    next_refresh_at: datetime | None
    due: bool
    refreshing: bool
    last_attempt: RefreshAttempt | None
    last_success: RefreshAttempt | None
    heartbeat: HeartbeatStatus


def account_refresh_info(
    *, account: InstagramAccount, now: datetime | None = None
) -> AccountRefreshInfo:
    now = now or timezone.now()
    token = AccessToken.objects.filter(account=account).defer("ciphertext").first()
    attempts = RefreshAttempt.objects.filter(account=account).order_by("-started_at")
    return AccountRefreshInfo(
        token=token,
        health=account_health(account=account, token=token, now=now),
        expired=bool(token and token.expires_at <= now),
        next_refresh_at=(
            token_next_refresh_at(token=token, account=account)
            if token and account.status == InstagramAccount.Status.ACTIVE
            else None
        ),
        due=token_is_due(token=token, account=account, now=now),
        refreshing=bool(account.refresh_locked_until and account.refresh_locked_until > now),
        last_attempt=attempts.first(),
        last_success=attempts.filter(outcome=RefreshAttempt.Outcome.SUCCESS).first(),
        heartbeat=heartbeat_status(now=now),
    )


def refresh_history(*, account: InstagramAccount, limit: int = 20) -> list[RefreshAttempt]:
    """The account's most recent refresh attempts, newest first."""
    return list(RefreshAttempt.objects.filter(account=account).order_by("-started_at")[:limit])
