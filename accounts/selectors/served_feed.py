"""Reads for the public feed URLs: what ``/feed/<account>.json`` and ``/media`` (or
``/feed.json`` for the default account) serve now, as one :class:`ServedFeed`.

As for the token URLs (``accounts.selectors.serving``), the hot path is
:func:`served_feed`: one cache get, no database query. An entry holds the
snapshot's posts in their stored shape (image references, not URLs: the URLs are
built per request for the host the browser used) and is built from the database on
a miss. ``accounts.token_cache``'s receivers drop it when the account or its
FeedSnapshot is saved: a sync swapping new posts in, or recording a failure, is
seen at once. An unknown name is answered from the cached set of known names and
stores nothing.

Whether a feed is stale also depends on the clock (no good sync for two periods),
so it is worked out per request from the entry's dates (``feed_policy``), not stored.
How a response is shaped from an entry is ``accounts.feed_serving_policy``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from accounts import feed_policy, token_cache
from accounts.models import InstagramAccount
from accounts.selectors.serving import (
    ERROR_TTL,
    MAX_SLUG_LENGTH,
    NO_DEFAULT_ACCOUNT,
    NO_DEFAULT_TTL,
    OK,
    UNKNOWN_ACCOUNT,
    ServedEntry,
    account_served_as,
    error_entry,
    fingerprint,
    known_slugs,
)

# Bump when the entry layout changes: old entries become misses, every ETag changes.
FORMAT = 1

# The account exists but no sync has read its feed yet (it was just connected, or
# every sync so far failed): there is nothing to serve, and never was.
NOT_READY = "feed_not_ready"
DISCONNECTED = "disconnected"

_DETAILS = {
    UNKNOWN_ACCOUNT: "No account with this name is connected to the agent.",
    NO_DEFAULT_ACCOUNT: "No Instagram account is connected to the agent yet.",
    NOT_READY: (
        "The agent has not read this account's feed from Instagram yet; "
        "it appears within minutes of connecting the account."
    ),
    DISCONNECTED: (
        "This account was disconnected from the agent and its feed deleted; "
        "the owner must connect it again."
    ),
}


@dataclass(frozen=True, slots=True)
class ServedFeed(ServedEntry):
    """What one account's feed URLs serve: when OK, the snapshot's posts (stored
    shape) with the dates staleness needs."""

    posts: tuple[dict, ...] = ()
    synced_at: datetime | None = None
    last_error_at: datetime | None = None
    # The account needs reconnecting: its token reads nothing, the feed is stale.
    needs_reconnect: bool = False
    format: int = FORMAT

    @property
    def detail(self) -> str:
        return _DETAILS[self.state]

    def stale(self, *, now: datetime) -> bool:
        """Served with ``"stale": true``: the last sync failed, the syncs stopped, or
        the account needs reconnecting (PRODUCT.md "Feed")."""
        return self.needs_reconnect or feed_policy.feed_is_stale(
            synced_at=self.synced_at, last_error_at=self.last_error_at, now=now
        )

    def max_age(self, *, now: datetime) -> int:
        """Seconds a client may cache the feed: until the next sync is expected."""
        return feed_policy.feed_cache_seconds(synced_at=self.synced_at, now=now)


def _error(state: str, *, slug: str | None, account: InstagramAccount | None) -> ServedFeed:
    return error_entry(ServedFeed, state, slug=slug, account=account, format=FORMAT)


def build_feed_entry(slug: str | None) -> ServedFeed:
    """Read what the feed of ``slug`` (None: the default account) serves from the
    database. The default account is chosen as for the token URLs; feed-only
    accounts serve their feed like any other."""
    account = account_served_as(slug, InstagramAccount.objects.select_related("feed_snapshot"))
    if account is None:
        state = NO_DEFAULT_ACCOUNT if slug is None else UNKNOWN_ACCOUNT
        return _error(state, slug=slug, account=None)
    if account.status == InstagramAccount.Status.DISCONNECTED:
        return _error(DISCONNECTED, slug=None, account=account)
    snapshot = getattr(account, "feed_snapshot", None)
    if snapshot is None or snapshot.synced_at is None:
        return _error(NOT_READY, slug=None, account=account)
    needs_reconnect = account.status == InstagramAccount.Status.NEEDS_RECONNECT
    posts = tuple(snapshot.posts)
    return ServedFeed(
        state=OK,
        slug=account.slug,
        account_id=account.pk,
        username=account.username,
        origins=account.allowed_domains,
        fingerprint=fingerprint(
            FORMAT,
            account.pk,
            account.slug,
            account.username,
            snapshot.synced_at.isoformat(),
            snapshot.last_error_at.isoformat() if snapshot.last_error_at else "",
            needs_reconnect,
            hashlib.sha256(json.dumps(posts, sort_keys=True).encode()).hexdigest(),
        ),
        posts=posts,
        synced_at=snapshot.synced_at,
        last_error_at=snapshot.last_error_at,
        needs_reconnect=needs_reconnect,
    )


def _ttl(entry: ServedFeed) -> int:
    if entry.ok:
        return token_cache.ENTRY_TTL
    return NO_DEFAULT_TTL if entry.state == NO_DEFAULT_ACCOUNT else ERROR_TTL


def cached_feed(slug: str | None) -> ServedFeed | None:
    """What ``/feed/<slug>.json`` and ``/media`` (``/feed.json`` for None) serve now,
    as far as the cache alone can tell (the process's copy, then the shared cache),
    or None when only the database can (a miss). Never queries the database: the
    WSGI fast path (``accounts.fastpath``) answers from it and hands a miss to Django."""
    if slug is not None and len(slug) > MAX_SLUG_LENGTH:
        return _error(UNKNOWN_ACCOUNT, slug=slug[:MAX_SLUG_LENGTH], account=None)
    key = token_cache.FEED_DEFAULT_KEY if slug is None else token_cache.feed_key_for(slug)
    entry = token_cache.get(key)
    if isinstance(entry, ServedFeed) and entry.format == FORMAT:
        return entry
    if slug is not None and token_cache.known_unknown(slug):
        return _error(UNKNOWN_ACCOUNT, slug=slug, account=None)
    return None


def served_feed(slug: str | None) -> ServedFeed:
    """What ``/feed/<slug>.json`` and ``/feed/<slug>/media`` (``/feed.json`` for
    None) serve now. Cache hit: no database query. An unknown name is answered from
    ``known_slugs`` and nothing is stored for it."""
    entry = cached_feed(slug)
    if entry is not None:
        return entry
    key = token_cache.FEED_DEFAULT_KEY if slug is None else token_cache.feed_key_for(slug)
    if slug is not None and slug not in known_slugs():
        return _error(UNKNOWN_ACCOUNT, slug=slug, account=None)
    return token_cache.fill(
        key,
        lambda: build_feed_entry(slug),
        timeout=_ttl,
        account_of=lambda e: e.account_id,
        same=lambda a, b: a.fingerprint == b.fingerprint,
    )
