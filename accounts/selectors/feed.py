"""Reads of the feed: the served ``/feed/<account>.json`` body, the Graph
``/me/media`` shape the Instafeed.js adapter reads, the agent's image URLs (built
here and nowhere else), and a mirrored image's bytes by its URL name.

The shapes are pure functions over a snapshot's ``posts`` (PRODUCT.md "Feed");
the ``*_for`` wrappers load the snapshot. URLs are absolute (``base_url`` is the
agent's origin, e.g. ``request.build_absolute_uri("/")``): sites on other origins
put them straight into ``<img src>``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.db.models import Func, IntegerField, Q
from django.utils import timezone

from accounts import feed_policy, feed_storage
from accounts.models import FeedImage, FeedSnapshot, InstagramAccount

IMAGE_PATH_PREFIX = "/feed/img/"
# <sha256>-<width>.jpg: the sha256 of the exact bytes served, so the URL is immutable.
IMAGE_NAME = re.compile(r"(?P<sha256>[0-9a-f]{64})-(?P<width>[1-9][0-9]{0,4})\.jpg")
GRAPH_TIMESTAMP = "%Y-%m-%dT%H:%M:%S+0000"


def feed_image_url(*, base_url: str, sha256: str, width: int) -> str:
    """The agent's URL of one mirrored rendition (the lead's URLconf serves
    ``feed/img/<name>`` with :func:`feed_image_get`)."""
    return f"{base_url.rstrip('/')}{IMAGE_PATH_PREFIX}{sha256}-{width}.jpg"


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _image(stored: dict, base_url: str) -> dict:
    sizes = [
        {
            "url": feed_image_url(base_url=base_url, sha256=s["sha256"], width=s["width"]),
            "width": s["width"],
            "height": s["height"],
        }
        for s in stored["sizes"]
    ]
    largest = sizes[-1]
    return {**largest, "sizes": sizes}


def _served_item(item: dict, base_url: str) -> dict:
    out = {k: item[k] for k in ("id", "media_type") if k in item}
    for k in ("permalink", "caption", "timestamp"):
        if k in item:
            out[k] = item[k]
    out["image"] = _image(item["image"], base_url)
    if item.get("video_url"):
        out["video_url"] = item["video_url"]
    if "children" in item:
        out["children"] = [_served_item(c, base_url) for c in item["children"]]
    return out


def feed_payload(
    *,
    posts: list[dict],
    account_slug: str,
    username: str,
    synced_at: datetime | None,
    stale: bool,
    base_url: str,
    limit: int | None = None,
) -> dict:
    """``{"account", "username", "updated_at", "stale", "posts": [...]}`` (PRODUCT.md
    "Feed"), ``limit`` posts at most."""
    chosen = posts if limit is None else posts[: max(0, limit)]
    return {
        "account": account_slug,
        "username": username,
        "updated_at": _iso(synced_at),
        "stale": stale,
        "posts": [_served_item(p, base_url) for p in chosen],
    }


def _graph_item(item: dict, base_url: str, username: str | None) -> dict:
    image = _image(item["image"], base_url)
    out: dict = {"id": item["id"], "media_type": item["media_type"]}
    if item["media_type"] == "VIDEO":
        out["thumbnail_url"] = image["url"]
        if item.get("video_url"):
            out["media_url"] = item["video_url"]
    else:
        out["media_url"] = image["url"]
    if username is not None:
        if "caption" in item:
            out["caption"] = item["caption"]
        out["permalink"] = item.get("permalink", "")
        stamp = datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
        out["timestamp"] = stamp.strftime(GRAPH_TIMESTAMP)
        out["username"] = username
    if "children" in item:
        out["children"] = {"data": [_graph_item(c, base_url, None) for c in item["children"]]}
    return out


def feed_graph_media(
    *,
    posts: list[dict],
    username: str,
    base_url: str,
    page_url: str,
    limit: int = 25,
    after: str = "",
) -> dict:
    """The snapshot as Graph's ``/me/media`` answers (docs/instagram.md section 6):
    ``data`` newest first, every field Instafeed.js asks for, pictures on the agent
    (a video's ``media_url`` is Instagram's video URL, as on Instagram), and
    ``paging`` whose ``next`` is ``page_url`` with the next cursor (a post id).
    An unknown cursor gives an empty last page."""
    limit = max(1, min(limit, 100))
    start = 0
    if after:
        ids = [p["id"] for p in posts]
        start = ids.index(after) + 1 if after in ids else len(posts)
    chosen = posts[start : start + limit]
    body: dict = {"data": [_graph_item(p, base_url, username) for p in chosen]}
    if chosen:
        paging: dict = {"cursors": {"before": chosen[0]["id"], "after": chosen[-1]["id"]}}
        if start + limit < len(posts):
            query = urlencode({"limit": limit, "after": chosen[-1]["id"]})
            paging["next"] = f"{page_url}?{query}"
        body["paging"] = paging
    return body


# --- Loading ------------------------------------------------------------------------------------


def feed_snapshot_get(*, account: InstagramAccount) -> FeedSnapshot | None:
    return FeedSnapshot.objects.filter(account=account).first()


def feed_is_stale(*, snapshot: FeedSnapshot | None, now: datetime | None = None) -> bool:
    if snapshot is None:
        return True
    return feed_policy.feed_is_stale(
        synced_at=snapshot.synced_at,
        last_error_at=snapshot.last_error_at,
        now=now or timezone.now(),
    )


def feed_get(
    *,
    account: InstagramAccount,
    base_url: str,
    limit: int | None = None,
    now: datetime | None = None,
) -> dict:
    """The served feed of ``account``. Before its first good sync: no posts,
    ``updated_at`` null and ``stale`` true."""
    snapshot = feed_snapshot_get(account=account)
    max_posts = feed_policy.setting("FEED_MAX_POSTS")
    return feed_payload(
        posts=snapshot.posts if snapshot else [],
        account_slug=account.slug,
        username=account.username,
        synced_at=snapshot.synced_at if snapshot else None,
        stale=feed_is_stale(snapshot=snapshot, now=now),
        base_url=base_url,
        limit=max_posts if limit is None else min(limit, max_posts),
    )


def feed_graph_media_for(
    *, account: InstagramAccount, base_url: str, page_url: str, limit: int = 25, after: str = ""
) -> dict:
    snapshot = feed_snapshot_get(account=account)
    return feed_graph_media(
        posts=snapshot.posts if snapshot else [],
        username=account.username,
        base_url=base_url,
        page_url=page_url,
        limit=limit,
        after=after,
    )


def feed_image_get(*, name: str) -> tuple[bytes, str] | None:
    """``(bytes, content type)`` of the rendition an image URL names
    (``<sha256>-<width>.jpg``), or None: a malformed name, a width that is not the
    stored one, or an image no longer stored (its posts left every snapshot)."""
    match = IMAGE_NAME.fullmatch(name)
    if not match:
        return None
    image = FeedImage.objects.filter(sha256=match["sha256"], width=int(match["width"])).first()
    if image is None:
        return None
    content = feed_storage.image_read(image=image)
    return (content, image.content_type) if content is not None else None


# --- Scheduling and health --------------------------------------------------------------------


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


def feed_sync_is_due(*, account: InstagramAccount, now: datetime | None = None) -> bool:
    """Whether ``account``'s feed should be read now (a queued task re-checks: the
    tick may have queued it twice while the worker was busy)."""
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
