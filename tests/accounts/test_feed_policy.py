"""accounts/feed_policy.py: the pure feed decisions, with the clock passed in."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts import feed_policy as policy

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=1800)


def test_defaults_are_the_contracts_and_settings_win(settings):
    assert policy.setting("FEED_SYNC_SECONDS") == 1800
    assert policy.setting("FEED_MAX_POSTS") == 50
    settings.FEED_MAX_POSTS = 12
    assert policy.setting("FEED_MAX_POSTS") == 12
    with pytest.raises(KeyError):
        policy.setting("FEED_TYPO")


def due(**kw):
    fields = {
        "synced_at": None,
        "attempted_at": None,
        "consecutive_failures": 0,
        "retry_not_before": None,
        "now": NOW,
    }
    return policy.feed_is_due(**{**fields, **kw})


def test_a_feed_never_read_is_due():
    assert due()


def test_a_feed_is_due_one_period_after_its_last_good_sync():
    assert not due(synced_at=NOW - PERIOD + timedelta(minutes=5), attempted_at=NOW - PERIOD)
    # A beat tick a moment early still catches it (5% slack), not a period later.
    assert due(synced_at=NOW - PERIOD + timedelta(seconds=60), attempted_at=NOW - PERIOD)
    assert due(synced_at=NOW - PERIOD, attempted_at=NOW - PERIOD)


def test_failures_back_off_doubling_up_to_a_cap():
    at = policy.feed_next_sync_at
    base: dict[str, Any] = {
        "synced_at": NOW - timedelta(days=1),
        "attempted_at": NOW,
        "retry_not_before": None,
    }
    assert at(**base, consecutive_failures=1) == NOW + PERIOD
    assert at(**base, consecutive_failures=2) == NOW + 2 * PERIOD
    assert at(**base, consecutive_failures=3) == NOW + 4 * PERIOD
    assert at(**base, consecutive_failures=50) == NOW + timedelta(hours=6)


def test_instagrams_retry_hint_is_honoured():
    hint = NOW + timedelta(hours=2)
    assert not due(attempted_at=NOW - PERIOD * 2, consecutive_failures=1, retry_not_before=hint)
    assert due(
        attempted_at=NOW - PERIOD * 2,
        consecutive_failures=1,
        retry_not_before=hint,
        now=hint,
    )
    assert not due(retry_not_before=hint)  # even before a first attempt


def test_the_sync_period_follows_the_setting(settings):
    settings.FEED_SYNC_SECONDS = 60
    assert due(synced_at=NOW - timedelta(seconds=61), attempted_at=NOW - timedelta(seconds=61))


def stale(**kw):
    return policy.feed_is_stale(**{"synced_at": NOW, "last_error_at": None, "now": NOW, **kw})


def test_stale_when_never_synced_failed_since_or_too_old():
    assert stale(synced_at=None)
    assert not stale()
    assert stale(last_error_at=NOW + timedelta(seconds=1))
    assert not stale(last_error_at=NOW - timedelta(seconds=1))  # failed, then recovered
    assert not stale(now=NOW + 2 * PERIOD)
    assert stale(now=NOW + 2 * PERIOD + timedelta(seconds=1))  # syncs stopped


def test_the_owner_hears_after_a_few_periods_without_a_good_sync():
    created = NOW - timedelta(days=3)
    assert not policy.feed_needs_alert(synced_at=NOW - 4 * PERIOD, created_at=created, now=NOW)
    assert policy.feed_needs_alert(
        synced_at=NOW - 4 * PERIOD - timedelta(seconds=1), created_at=created, now=NOW
    )
    assert policy.feed_needs_alert(synced_at=None, created_at=created, now=NOW)
    assert not policy.feed_needs_alert(synced_at=None, created_at=NOW - PERIOD, now=NOW)


def test_cache_lifetime_runs_until_the_next_sync_at_least_a_minute():
    cache = policy.feed_cache_seconds
    assert cache(synced_at=NOW, now=NOW) == 1800
    assert cache(synced_at=NOW - timedelta(minutes=20), now=NOW) == 600
    assert cache(synced_at=NOW - timedelta(minutes=31), now=NOW) == 60
    assert cache(synced_at=None, now=NOW) == 60
    assert cache(synced_at=NOW + timedelta(hours=1), now=NOW) == 1800  # a clock step back


def test_a_mirrored_picture_is_reused_for_a_day():
    reusable = policy.image_is_reusable
    assert reusable(mirrored_at=NOW - timedelta(hours=23), now=NOW)
    assert not reusable(mirrored_at=NOW - timedelta(hours=24), now=NOW)
    assert not reusable(mirrored_at=None, now=NOW)
    assert not reusable(mirrored_at=NOW, now=NOW, refetch_seconds=0)
