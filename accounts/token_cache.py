"""The served copies of each account's token and feed live in the Django cache
(shared by web and worker) so the public URLs do not query the database on every hit.

What an entry holds is decided by ``accounts.selectors.serving`` (tokens) and
``accounts.selectors.served_feed`` (feeds); this module knows the keys, fills them
(:func:`fill`) and drops them. The keys, all bounded by the number of accounts:

- ``token:slug:<slug>`` per account name, ``token:__default__`` for ``/token*``;
- ``feed:slug:<slug>`` per account name, ``feed:__default__`` for ``/feed.json``;
- ``token:slugs``, the set of every account's name: an unknown name is answered
  from it, so no request for a name that does not exist stores anything;
- ``token:index:<account id>``, the keys an account's entries were stored under;
- ``feed:images``, the generation of the mirrored pictures the web processes keep
  (``accounts.selectors.served_images``), dropped by :func:`drop_images` once
  pictures are deleted (``feed_storage.images_delete_unused``).

**Invalidation, one mechanism**: the receivers below, connected by
``AccountsConfig.ready()``, on ``post_save``/``post_delete`` of ``InstagramAccount``,
``AccessToken`` and ``FeedSnapshot`` (a sync swapping the snapshot in, or recording
a failure, saves it). Each write adds its account to the transaction's pending set
(a renamed account with its old slug too, remembered by a ``pre_save`` receiver);
after commit the set is dropped once, in one ``delete_many``: the account's keys
under every slug it had, the defaults and the known names. So a disconnect (token
deleted, status saved) is one invalidation, and a rolled-back write drops nothing.
Services do not call anything for writes through the ORM (``save()``, ``delete()``,
the admin). Only writes that bypass signals (queryset ``.update()``,
``bulk_update``) must call :func:`invalidate` after commit.

The cache is an accelerator, never a dependency: when it fails (Redis down, or the
database that holds it without Redis, tokenagent/cache.py), a
read is a miss (the caller rebuilds from the database), a write or invalidation
is skipped with a warning (an entry missed that way lapses within ENTRY_TTL).
"""

import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from redis.exceptions import RedisError

from accounts.models import AccessToken, FeedSnapshot, InstagramAccount

logger = logging.getLogger(__name__)
# What a failing cache backend raises: redis-py's errors, socket and file errors, and
# the database cache's errors.
CACHE_ERRORS = (RedisError, OSError, DatabaseError)

DEFAULT_KEY = "token:__default__"
FEED_DEFAULT_KEY = "feed:__default__"
SLUGS_KEY = "token:slugs"
IMAGES_KEY = "feed:images"
# Entries are rebuilt at least this often even if an invalidation was missed (seconds).
ENTRY_TTL = 600


T = TypeVar("T")


def key_for(slug: str) -> str:
    return f"token:slug:{slug}"


def feed_key_for(slug: str) -> str:
    return f"feed:slug:{slug}"


def _index_key(account_id: int) -> str:
    # The keys an account's entries were stored under (its slug may change later).
    return f"token:index:{account_id}"


# Each web process keeps what it read from the shared cache for at most
# TOKEN_CACHE_LOCAL_SECONDS (default 1 s): a hit then costs a dict lookup instead of
# a file read or a Redis round trip. Invalidation empties it at once in the process
# that runs it; other processes see the change when their copy lapses.
_local: dict[str, tuple[float, object]] = {}
_LOCAL_MAX_ENTRIES = 1024


def _local_seconds() -> float:
    return getattr(settings, "TOKEN_CACHE_LOCAL_SECONDS", 0)


def get(key: str) -> object:
    """The copy stored under ``key`` (this process's first), or None; callers check its type."""
    seconds = _local_seconds()
    if seconds > 0:
        now = time.monotonic()
        hit = _local.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    try:
        entry = cache.get(key)
    except CACHE_ERRORS as exc:
        logger.warning("token cache read failed, serving from the database: %r", exc)
        return None
    if seconds > 0 and entry is not None:
        if len(_local) >= _LOCAL_MAX_ENTRIES:
            _local.clear()
        _local[key] = (now + seconds, entry)
    return entry


def known_unknown(slug: str) -> bool:
    """True when the cached set of every account's slug is there and lacks ``slug``:
    a cache-only answer for an unknown name (False when the set is not cached)."""
    slugs = get(SLUGS_KEY)
    return isinstance(slugs, frozenset) and slug not in slugs


def clear_local() -> None:
    """Forget this process's short-lived copies (tests; invalidation does it per key)."""
    _local.clear()


def store(key: str, entry: object, *, timeout: int, account_id: int | None = None) -> bool:
    """Store ``entry``; False when the cache could not take it."""
    try:
        cache.set(key, entry, timeout)
        if account_id is not None and key not in (DEFAULT_KEY, FEED_DEFAULT_KEY):
            index_key = _index_key(account_id)
            known = cache.get(index_key) or []
            if key not in known:
                cache.set(index_key, [*known, key][-8:], 2 * ENTRY_TTL)
    except CACHE_ERRORS as exc:
        logger.warning("token cache write failed: %r", exc)
        return False
    seconds = _local_seconds()
    if seconds > 0:
        _local[key] = (time.monotonic() + seconds, entry)
    return True


def delete(key: str) -> None:
    _local.pop(key, None)
    try:
        cache.delete(key)
    except CACHE_ERRORS as exc:
        logger.warning("token cache delete failed: %r", exc)


def fill(
    key: str,
    build: Callable[[], T],
    *,
    timeout: Callable[[T], int],
    account_of: Callable[[T], int | None] = lambda value: None,
    same: Callable[[T, T], bool] = operator.eq,
) -> T:
    """Build, store, then build once more and drop the stored copy if the two
    differ: a writer that committed while we were reading may have invalidated
    before our store, and this second read sees its commit (its own after-commit
    invalidation covers anything later)."""
    value = build()
    if not store(key, value, timeout=timeout(value), account_id=account_of(value)):
        return value  # nothing stored (the cache is down), so nothing can be stale
    again = build()
    if not same(again, value):
        delete(key)
    return again


def _drop(accounts: dict[int | None, set[str]]) -> None:
    """Drop every copy that may serve these accounts (id -> slugs they were served
    under), the defaults and the known names: one read of the indexes, one delete."""
    slugs = {s for names in accounts.values() for s in names}
    keys = {DEFAULT_KEY, FEED_DEFAULT_KEY, SLUGS_KEY}
    keys.update(key for s in slugs for key in (key_for(s), feed_key_for(s)))
    try:
        ids = [i for i in accounts if i is not None]
        if ids:
            for indexed in cache.get_many([_index_key(i) for i in ids]).values():
                keys.update(indexed or ())
        cache.delete_many(sorted(keys))
    except CACHE_ERRORS as exc:
        # Never fails the write that triggered it (a refresh has already committed).
        logger.warning(
            "token cache invalidation failed; entries lapse within %ss: %r", ENTRY_TTL, exc
        )
    for key in keys:
        _local.pop(key, None)


def drop_images() -> None:
    """Every process's kept pictures stop being served (each sees it once its copy
    of the generation lapses): called after a deletion of pictures commits."""
    delete(IMAGES_KEY)


def invalidate(account: InstagramAccount, *, slugs: tuple[str, ...] = ()) -> None:
    """Drop every cached copy that may serve ``account`` now: by its slug (current
    and any earlier one it was served under, plus ``slugs``) and as the default.
    Only for writes that bypass the receivers (queryset ``.update()``)."""
    _drop({account.pk: {account.slug, *slugs}})


def invalidate_on_commit(accounts: Iterable[InstagramAccount]) -> None:
    """Drop every cached copy serving these accounts once the current transaction
    commits, as the receivers would have for each: for a batch that writes many
    accounts and tokens with queryset ``update()``/``bulk_update()`` (no signals)."""
    for account in accounts:
        _schedule(account.pk, account.slug)


# --- The receivers: one invalidation per committed transaction ---------------------------


class _Pending:
    """The accounts one transaction wrote, dropped once after it commits."""

    def __init__(self) -> None:
        self.accounts: dict[int | None, set[str]] = {}
        self.done = False

    def add(self, account_id: int | None, slugs: set[str]) -> None:
        self.accounts.setdefault(account_id, set()).update(slugs)

    def flush(self) -> None:
        if not self.done:
            self.done = True
            _drop(self.accounts)


_thread = threading.local()


def _schedule(account_id: int | None, *slugs: str | None) -> None:
    """Add an account to the current transaction's pending set and queue its flush
    (outside a transaction the write has committed: drop it now).

    Each write queues the same flush, which drops the set at its first call only:
    one invalidation per commit however many writes, and a flush queued inside a
    savepoint that rolls back leaves the others queued."""
    connection = transaction.get_connection()
    pending = getattr(_thread, "pending", None)
    # Still waiting for this transaction's commit? A rollback discards the queued
    # callbacks, and with them the set.
    waiting = (
        pending is not None
        and not pending.done
        and connection.in_atomic_block
        and any(func == pending.flush for _, func, _ in connection.run_on_commit)
    )
    if not waiting or pending is None:
        pending = _thread.pending = _Pending()
    pending.add(account_id, {s for s in slugs if s})
    transaction.on_commit(pending.flush)


def _account_saving(
    sender: type[InstagramAccount],
    instance: InstagramAccount,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    **kwargs: object,
) -> None:
    # A rename must also drop the entry under the old slug: read it before it is gone.
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and "slug" not in update_fields:
        return
    old = InstagramAccount.objects.filter(pk=instance.pk).values_list("slug", flat=True).first()
    instance.__dict__["_served_slug_before"] = old if old != instance.slug else None


def _account_written(
    sender: type[InstagramAccount], instance: InstagramAccount, **kwargs: object
) -> None:
    # Values are read now: after a delete the instance's pk is None by commit time.
    old = instance.__dict__.pop("_served_slug_before", None)
    _schedule(instance.pk, instance.slug, old)


def _child_written(sender: type, instance: AccessToken | FeedSnapshot, **kwargs: object) -> None:
    # A token or a feed snapshot: what is served for its account changed.
    slug: str | None
    if type(instance).account.is_cached(instance):
        slug = instance.account.slug
    else:
        slug = (
            InstagramAccount.objects.filter(pk=instance.account_id)
            .values_list("slug", flat=True)
            .first()
        )
    _schedule(instance.account_id, slug)


def connect_receivers() -> None:
    """Called once by ``AccountsConfig.ready()``."""
    pre_save.connect(_account_saving, sender=InstagramAccount, dispatch_uid="token_cache_pre")
    for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(_account_written, sender=InstagramAccount, dispatch_uid=f"tc_account_{name}")
        signal.connect(_child_written, sender=AccessToken, dispatch_uid=f"tc_token_{name}")
        signal.connect(_child_written, sender=FeedSnapshot, dispatch_uid=f"tc_feed_{name}")
