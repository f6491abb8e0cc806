"""The refresh policy in pure functions: when a token may and should be refreshed,
how healthy an account is, and when the refresher counts as stopped.

No database and no clock: callers pass model instances (loaded or unsaved) and
``now``; the only other input is settings. Selectors, services, alerts and serving
all decide through these functions, so the rules live in one place.

Rules (docs/instagram.md section 4 and PRODUCT.md "Refresh"): a long-lived token can
be refreshed only when it is at least 24 hours old and not expired; we refresh it
on the account's schedule (``REFRESH_FREQUENCY`` or the per-account override) and
in any case once it expires within ``REFRESH_SAFETY_WINDOW_DAYS``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from accounts.models import AccessToken, InstagramAccount

# Instagram refuses to refresh a token younger than this (docs/instagram.md section 4).
MIN_TOKEN_AGE = timedelta(hours=24)

# Per-account health, as /healthz and the dashboard say it.
OK = "ok"
EXPIRING = "expiring"
NEEDS_RECONNECT = "needs_reconnect"
DISCONNECTED = "disconnected"
HEALTH_STATES = (OK, EXPIRING, NEEDS_RECONNECT, DISCONNECTED)
UNHEALTHY = {EXPIRING, NEEDS_RECONNECT}


def safety_window() -> timedelta:
    """A token expiring within this is refreshed whatever its schedule says."""
    return timedelta(days=settings.REFRESH_SAFETY_WINDOW_DAYS)


def token_last_renewed_at(*, token: AccessToken) -> datetime:
    """When the token was last issued or refreshed: the schedule counts from here."""
    return max(token.issued_at, token.refreshed_at or token.issued_at)


def token_is_due(*, token: AccessToken | None, account: InstagramAccount, now: datetime) -> bool:
    """The one due decision.

    Due = the account is active, the token is at least 24 h old and unexpired, and
    either its refresh interval has passed since it was last issued/refreshed or it
    expires within the safety window.
    """
    if token is None or account.status != InstagramAccount.Status.ACTIVE:
        return False
    if now - token.issued_at < MIN_TOKEN_AGE or token.expires_at <= now:
        return False
    if now >= token_last_renewed_at(token=token) + account.refresh_interval:
        return True
    return token.expires_at - now <= safety_window()


def token_next_refresh_at(*, token: AccessToken, account: InstagramAccount) -> datetime:
    """When :func:`token_is_due` first turns true (may be in the past when overdue)."""
    on_schedule = token_last_renewed_at(token=token) + account.refresh_interval
    in_window = token.expires_at - safety_window()
    earliest = token.issued_at + MIN_TOKEN_AGE
    return max(min(on_schedule, in_window), earliest)


def account_health(*, account: InstagramAccount, token: AccessToken | None, now: datetime) -> str:
    """``ok`` / ``expiring`` (within the safety window) / ``needs_reconnect``
    (Instagram refused the token, or it is missing or expired) / ``disconnected``."""
    if account.status == InstagramAccount.Status.DISCONNECTED:
        return DISCONNECTED
    if account.status == InstagramAccount.Status.NEEDS_RECONNECT or token is None:
        return NEEDS_RECONNECT
    if token.expires_at <= now:
        return NEEDS_RECONNECT
    if token.expires_at - now <= safety_window():
        return EXPIRING
    return OK


def heartbeat_stale_after() -> timedelta:
    """The refresher counts as stopped when it has not run for twice its period."""
    return timedelta(seconds=2 * settings.REFRESH_TICK_SECONDS)


def heartbeat_is_stale(*, last_run: datetime | None, now: datetime) -> bool:
    """True when the periodic job never ran or last ran longer ago than the limit."""
    return last_run is None or now - last_run > heartbeat_stale_after()
