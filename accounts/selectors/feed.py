"""Reads of the feed: the served ``/feed/<account>.json`` body, the Graph
``/me/media`` shape the Instafeed.js adapter reads, the agent's image URLs (built
here and nowhere else), and a mirrored image's bytes by its URL name.

The shapes are pure functions over a snapshot's ``posts`` (PRODUCT.md "Feed");
the ``*_for`` wrappers load the snapshot. URLs are absolute (``base_url`` is the
agent's origin, e.g. ``request.build_absolute_uri("/")``): sites on other origins
put them straight into ``<img src>``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode

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
