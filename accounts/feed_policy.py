"""Feed policy in pure functions: when a feed is due for a sync, when a served
snapshot is stale, when the owner should hear about it, how long a served feed may
be cached, and whether a mirrored picture may be reused without downloading it
again. No I/O, no models.

The numbers are settings (tokenagent/settings.py, "The feed": FEED_SYNC_SECONDS
and FEED_MAX_POSTS from the environment, the internal limits beside them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings


def setting(name: str) -> Any:
    """A feed setting (``FEED_*``) from settings; KeyError for a name that is none."""
    if not name.startswith("FEED_") or not hasattr(settings, name):
        raise KeyError(name)
    return getattr(settings, name)


def sync_period(sync_seconds: int | None = None) -> timedelta:
    return timedelta(seconds=sync_seconds or setting("FEED_SYNC_SECONDS"))


def feed_next_sync_at(
    *,
    synced_at: datetime | None,
    attempted_at: datetime | None,
    consecutive_failures: int,
    retry_not_before: datetime | None,
    sync_seconds: int | None = None,
) -> datetime | None:
    """When the feed should next be read; None = now (never attempted).

    After a success: one period after it. After failures: the period, doubled per
    further consecutive failure, capped (a broken account does not burn its rate
    budget every period), and never before Instagram's own retry hint."""
    period = sync_period(sync_seconds)
    if attempted_at is None:
        return retry_not_before
    if consecutive_failures <= 0:
        base = (synced_at or attempted_at) + period
    else:
        cap = timedelta(seconds=setting("FEED_FAILURE_BACKOFF_MAX_SECONDS"))
        factor = 2 ** min(consecutive_failures - 1, 16)
        base = attempted_at + max(period, min(period * factor, cap))
    return max(base, retry_not_before) if retry_not_before else base


def feed_is_due(
    *,
    synced_at: datetime | None,
    attempted_at: datetime | None,
    consecutive_failures: int,
    retry_not_before: datetime | None,
    now: datetime,
    sync_seconds: int | None = None,
) -> bool:
    """Whether beat should queue a sync now (a small slack lets a sync that ran a
    moment late not slip a whole period)."""
    at = feed_next_sync_at(
        synced_at=synced_at,
        attempted_at=attempted_at,
        consecutive_failures=consecutive_failures,
        retry_not_before=retry_not_before,
        sync_seconds=sync_seconds,
    )
    slack = sync_period(sync_seconds) / 20
    return at is None or at - slack <= now


def feed_is_stale(
    *,
    synced_at: datetime | None,
    last_error_at: datetime | None,
    now: datetime,
    sync_seconds: int | None = None,
) -> bool:
    """A served snapshot is stale when there is none yet, when a sync failed since
    the last good one, or when the last good one is over two periods old (the
    syncs stopped: no beat, no worker)."""
    if synced_at is None:
        return True
    if last_error_at is not None and last_error_at >= synced_at:
        return True
    return now - synced_at > 2 * sync_period(sync_seconds)


def feed_needs_alert(
    *,
    synced_at: datetime | None,
    created_at: datetime,
    now: datetime,
    sync_seconds: int | None = None,
) -> bool:
    """Tell the owner once the feed has been without a good sync for a few periods
    (counted from its creation when it never synced)."""
    periods = setting("FEED_STALE_ALERT_PERIODS")
    return now - (synced_at or created_at) > periods * sync_period(sync_seconds)


def feed_cache_seconds(
    *, synced_at: datetime | None, now: datetime, sync_seconds: int | None = None
) -> int:
    """``max-age`` for a served feed: until the next sync is expected, at least 60 s
    (a stale feed is re-asked for soon, not cached for a period)."""
    if synced_at is None:
        return 60
    left = (synced_at + sync_period(sync_seconds) - now).total_seconds()
    return int(max(60, min(left, sync_period(sync_seconds).total_seconds())))


def image_is_reusable(
    *, mirrored_at: datetime | None, now: datetime, refetch_seconds: int | None = None
) -> bool:
    """Whether a post's mirrored picture may be served again without downloading."""
    if mirrored_at is None:
        return False
    limit = (
        refetch_seconds if refetch_seconds is not None else setting("FEED_IMAGE_REFETCH_SECONDS")
    )
    return now - mirrored_at < timedelta(seconds=limit)
