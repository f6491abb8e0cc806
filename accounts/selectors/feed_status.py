"""Reads about the feeds' freshness: which feeds beat should read now, each feed's
state as the owner sees it (dashboard, /healthz's per-account detail) and the
counts /healthz gives anyone. The decisions are :mod:`accounts.feed_policy`'s;
the served shapes are :mod:`accounts.selectors.feed`'s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Func, IntegerField, Q
from django.utils import timezone

from accounts import feed_policy
from accounts.models import FeedSnapshot, InstagramAccount
from accounts.selectors.feed import feed_is_stale


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


# --- Scheduling and counts --------------------------------------------------------------------


def _snapshot_is_due(snapshot: FeedSnapshot | None, now: datetime) -> bool:
    return snapshot is None or feed_policy.feed_is_due(
        synced_at=snapshot.synced_at,
        attempted_at=snapshot.attempted_at,
        consecutive_failures=snapshot.consecutive_failures,
        retry_not_before=snapshot.retry_not_before,
        now=now,
    )


def feed_accounts_due(*, now: datetime | None = None) -> list[InstagramAccount]:
    """Active accounts whose feed should be read now (feed_policy.feed_is_due):
    for beat's fan-out. Accounts needing reconnection are left out: their token
    cannot read anything, and their last snapshot keeps being served. So are feeds
    a sync holds right now (it will be done before any new task could start)."""
    now = now or timezone.now()
    accounts = (
        InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE)
        .filter(
            Q(feed_snapshot__isnull=True)
            | Q(feed_snapshot__sync_locked_until__isnull=True)
            | Q(feed_snapshot__sync_locked_until__lt=now)
        )
        .select_related("feed_snapshot")
        .defer("feed_snapshot__posts")
        .order_by("pk")
    )
    return [a for a in accounts if _snapshot_is_due(getattr(a, "feed_snapshot", None), now)]


def feed_account_for_sync(*, account_id: int) -> InstagramAccount | None:
    """The account a sync task works on, read once with its snapshot (without its
    posts, read again once the sync holds its claim) and its token."""
    return (
        InstagramAccount.objects.select_related("feed_snapshot", "access_token")
        .defer("feed_snapshot__posts")
        .filter(pk=account_id)
        .first()
    )


def feed_sync_is_due(*, account: InstagramAccount, now: datetime | None = None) -> bool:
    """Whether ``account``'s feed should be read now (a queued task re-checks: the
    tick may have queued it twice while the worker was busy). Uses the snapshot
    read with the account (``feed_account_for_sync``) when there is one."""
    if InstagramAccount.feed_snapshot.is_cached(account):
        snapshot = getattr(account, "feed_snapshot", None)
    else:
        snapshot = FeedSnapshot.objects.filter(account=account).defer("posts").first()
    return _snapshot_is_due(snapshot, now or timezone.now())


def feed_health(*, now: datetime | None = None) -> dict:
    """Feed freshness for /healthz and the dashboard, without account names:
    counts of fresh, stale and never-synced feeds of active accounts, the oldest
    good sync, and how many feeds the owner should be alerted about."""
    now = now or timezone.now()
    snapshots = {
        s.account_id: s
        for s in FeedSnapshot.objects.filter(account__status=InstagramAccount.Status.ACTIVE).defer(
            "posts"
        )
    }
    accounts = InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE)
    counts = {"feeds": 0, "fresh": 0, "stale": 0, "never_synced": 0, "alerting": 0}
    oldest: datetime | None = None
    for account in accounts.only("pk"):
        counts["feeds"] += 1
        snapshot = snapshots.get(account.pk)
        synced_at = snapshot.synced_at if snapshot else None
        if synced_at is None:
            counts["never_synced"] += 1
        stale = feed_is_stale(snapshot=snapshot, now=now)
        counts["stale" if stale else "fresh"] += 1
        if synced_at and (oldest is None or synced_at < oldest):
            oldest = synced_at
        if _needs_alert(snapshot, now):
            counts["alerting"] += 1
    return {**counts, "oldest_synced_at": _iso(oldest)}


# --- Each feed's state, for the dashboard and /healthz's per-account detail -----------------

FRESH = "fresh"
STALE = "stale"
NEVER_SYNCED = "never_synced"


class _JSONArrayLength(Func):
    """The length of a JSON array column, counted by the database (the posts are
    never loaded for it)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


@dataclass(frozen=True)
class FeedStatus:
    """One account's feed as its owner sees it (no token, no posts)."""

    state: str  # FRESH, STALE or NEVER_SYNCED
    synced_at: datetime | None  # the last good sync (served as ``updated_at``)
    age_seconds: int | None
    posts: int
    alerting: bool  # older than FEED_STALE_ALERT_PERIODS periods: the owner is told
    syncing: bool
    due: bool  # beat queues a sync at its next tick
    next_sync_at: datetime | None
    last_error: str  # redacted when stored; only while it is newer than the last good sync
    last_error_at: datetime | None
    images_missing: int

    @property
    def stale(self) -> bool:
        return self.state != FRESH


def _needs_alert(snapshot: FeedSnapshot | None, now: datetime) -> bool:
    """feed_policy.feed_needs_alert, counted from the first sync attempt (which
    creates the snapshot). A feed never attempted is not alerted about: if syncs do
    not run at all, the refresher-stopped alert says so, and an upgraded install's
    old accounts are not all reported before their first sync."""
    if snapshot is None:
        return False
    return feed_policy.feed_needs_alert(
        synced_at=snapshot.synced_at, created_at=snapshot.created_at, now=now
    )


def _status(
    account: InstagramAccount, snapshot: FeedSnapshot | None, posts: int, now: datetime
) -> FeedStatus:
    synced_at = snapshot.synced_at if snapshot else None
    active = account.status == InstagramAccount.Status.ACTIVE
    failing = bool(
        snapshot
        and snapshot.last_error_at
        and (synced_at is None or snapshot.last_error_at >= synced_at)
    )
    if synced_at is None:
        state = NEVER_SYNCED
    else:
        state = STALE if feed_is_stale(snapshot=snapshot, now=now) else FRESH
    return FeedStatus(
        state=state,
        synced_at=synced_at,
        age_seconds=int((now - synced_at).total_seconds()) if synced_at else None,
        posts=posts,
        alerting=_needs_alert(snapshot, now),
        syncing=bool(snapshot and snapshot.sync_locked_until and snapshot.sync_locked_until > now),
        due=active and _snapshot_is_due(snapshot, now),
        next_sync_at=(
            feed_policy.feed_next_sync_at(
                synced_at=snapshot.synced_at,
                attempted_at=snapshot.attempted_at,
                consecutive_failures=snapshot.consecutive_failures,
                retry_not_before=snapshot.retry_not_before,
            )
            if snapshot and active
            else None
        ),
        last_error=snapshot.last_error if snapshot and failing else "",
        last_error_at=snapshot.last_error_at if snapshot and failing else None,
        images_missing=snapshot.images_missing if snapshot else 0,
    )


def feed_statuses(
    *, accounts: Iterable[InstagramAccount], now: datetime | None = None
) -> dict[int, FeedStatus]:
    """The feed state of each of ``accounts``, by account id."""
    now = now or timezone.now()
    accounts = list(accounts)
    snapshots = {
        s.account_id: s
        for s in FeedSnapshot.objects.filter(account__in=accounts)
        .defer("posts")
        .annotate(post_count=_JSONArrayLength("posts"))
    }
    return {
        a.pk: _status(
            a,
            snapshots.get(a.pk),
            getattr(snapshots.get(a.pk), "post_count", 0) or 0,
            now,
        )
        for a in accounts
    }


def feed_health_per_account(*, now: datetime | None = None) -> dict[str, dict]:
    """/healthz's per-account feed detail (for the owner or the HEALTHZ_TOKEN
    bearer only: it names the accounts), every account not disconnected, by slug."""
    now = now or timezone.now()
    accounts = list(
        InstagramAccount.objects.exclude(status=InstagramAccount.Status.DISCONNECTED)
        .only("pk", "slug", "status", "created_at")
        .order_by("slug")
    )
    statuses = feed_statuses(accounts=accounts, now=now)
    return {
        a.slug: {
            "state": (status := statuses[a.pk]).state,
            "updated_at": _iso(status.synced_at),
            "age_seconds": status.age_seconds,
            "posts": status.posts,
            "alerting": status.alerting,
        }
        for a in accounts
    }
