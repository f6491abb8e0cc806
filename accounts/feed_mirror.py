"""Mirror the pictures of a listing: for each post (and carousel item) reuse the
picture mirrored before, or download it from the CDN (instagram.fetch_image),
turn it into renditions (images.py) and store them (feed_storage.py), a few
downloads at a time and within a time budget. Builds the posts of the snapshot
in the stored shape. Used by services/feed.py only.

A picture that cannot be had (expired URL, not an image, too large, broken, out
of budget) keeps the post's earlier mirrored picture when there is one; else the
item is left out (a carousel keeps its other items), because every served post
promises an ``image`` and a site must never show a broken one. It comes back at
the next sync that can mirror it."""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from accounts import feed_policy, feed_storage, images, instagram
from accounts.models import FeedSnapshot

logger = logging.getLogger(__name__)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except (AttributeError, ValueError):
        return None


def mirrored_by_key(posts: list[dict]) -> dict[str, dict]:
    """The stored picture of every post and carousel item, by its media id."""
    found: dict[str, dict] = {}
    for post in posts:
        for item in [post, *post.get("children", [])]:
            if isinstance(item.get("image"), dict):
                found.setdefault(item["id"], item["image"])
    return found


def image_shas(posts: list[dict]) -> set[str]:
    """Every rendition a list of stored posts refers to."""
    return {
        size["sha256"]
        for image in mirrored_by_key(posts).values()
        for size in image.get("sizes", [])
    }


@dataclass
class _Processed:
    source_sha256: str = ""
    renditions: list[images.Rendition] = field(default_factory=list)
    error: str = ""


def _download(url: str, deadline: float) -> _Processed:
    """Runs in a worker thread: HTTP and Pillow only, no database."""
    left = deadline - time.monotonic()
    if left <= 0:
        return _Processed(error="out of the sync's download time")
    try:
        fetched = instagram.fetch_image(
            url,
            max_bytes=feed_policy.setting("FEED_IMAGE_MAX_BYTES"),
            timeout=min(float(feed_policy.setting("FEED_IMAGE_TIMEOUT")), left),
        )
        source = hashlib.sha256(fetched.content).hexdigest()
        return _Processed(source_sha256=source, renditions=images.image_renditions(fetched.content))
    except instagram.InstagramError as exc:
        return _Processed(error=exc.describe())
    except images.ImageRejected as exc:
        return _Processed(error=f"not a usable picture: {exc}")


@dataclass
class MirrorReport:
    fetched: int = 0
    reused: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


class Mirror:
    """Resolves the pictures of one sync. ``resolve`` first (downloads), then
    ``post`` for each listed item builds its stored shape."""

    def __init__(self, *, snapshot: FeedSnapshot, now: datetime) -> None:
        self.snapshot = snapshot
        self.now = now
        self.before = mirrored_by_key(snapshot.posts)
        self.resolved: dict[str, dict | None] = {}
        self.report = MirrorReport()

    def _wanted(self, media: list[instagram.Media]) -> dict[str, str]:
        """media id -> CDN URL of its picture, for every item with one."""
        wanted: dict[str, str] = {}
        for m in media:
            if m.media_type == "CAROUSEL_ALBUM" and m.children:
                for c in m.children:
                    url = c.thumbnail_url if c.media_type == "VIDEO" else c.media_url
                    if url:
                        wanted[c.id] = url
            else:
                url = m.thumbnail_url if m.media_type == "VIDEO" else m.media_url
                if url:
                    wanted[m.id] = url
        return wanted

    def resolve(self, media: list[instagram.Media]) -> None:
        to_fetch: dict[str, str] = {}
        for key, url in self._wanted(media).items():
            old = self.before.get(key)
            if old and feed_policy.image_is_reusable(
                mirrored_at=_parse_iso(old.get("mirrored_at")), now=self.now
            ):
                self.resolved[key] = old
                self.report.reused += 1
            else:
                to_fetch[key] = url
        if not to_fetch:
            return
        deadline = time.monotonic() + feed_policy.setting("FEED_SYNC_IMAGE_BUDGET_SECONDS")
        workers = max(1, int(feed_policy.setting("FEED_IMAGE_WORKERS")))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed-image") as pool:
            futures = {key: pool.submit(_download, url, deadline) for key, url in to_fetch.items()}
            for key, future in futures.items():
                self._settle(key, future.result())

    def _settle(self, key: str, done: _Processed) -> None:
        old = self.before.get(key)
        if done.error:
            self.report.errors.append(f"{key}: {done.error}")
            logger.info(
                "feed %s: picture %s not mirrored: %s", self.snapshot.account_id, key, done.error
            )
            if old:
                self.resolved[key] = old
                self.report.reused += 1
            else:
                self.resolved[key] = None
                self.report.missing += 1
            return
        if old and old.get("source_sha256") == done.source_sha256:
            self.resolved[key] = {**old, "mirrored_at": iso(self.now)}  # unchanged picture
            self.report.reused += 1
            return
        for rendition in done.renditions:
            feed_storage.image_save(
                snapshot=self.snapshot, rendition=rendition, source_sha256=done.source_sha256
            )
        largest = done.renditions[-1]
        self.resolved[key] = {
            "source_sha256": done.source_sha256,
            "mirrored_at": iso(self.now),
            "width": largest.width,
            "height": largest.height,
            "sizes": [
                {"sha256": r.sha256, "width": r.width, "height": r.height} for r in done.renditions
            ],
        }
        self.report.fetched += 1

    def _item(self, m: instagram.Media | instagram.MediaChild) -> dict | None:
        image = self.resolved.get(m.id)
        if image is None:
            return None
        item: dict = {"id": m.id, "media_type": m.media_type, "image": image}
        if m.media_type == "VIDEO" and m.media_url:
            item["video_url"] = m.media_url
        return item

    def post(self, m: instagram.Media) -> dict | None:
        """The stored shape of one listed post, or None when it has no picture."""
        children = [c for c in (self._item(c) for c in m.children) if c is not None]
        post: dict | None
        if m.media_type == "CAROUSEL_ALBUM" and m.children:
            if not children:
                return None
            post = {"id": m.id, "media_type": m.media_type, "image": children[0]["image"]}
        else:
            post = self._item(m)
            if post is None:
                return None
        post["permalink"] = m.permalink
        if m.caption is not None:
            post["caption"] = m.caption
        post["timestamp"] = iso(m.timestamp)
        if m.media_type == "CAROUSEL_ALBUM":
            post["children"] = children
        # Keys in the served order (selectors/feed.py keeps it).
        order = ("id", "media_type", "permalink", "caption", "timestamp", "image", "video_url")
        return {k: post[k] for k in (*order, "children") if k in post}
