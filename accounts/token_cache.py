"""The served copy of each account's token lives in the Django cache (shared by
web and worker) so the token endpoints do not query the database on every hit.

What an entry holds is decided by ``accounts.selectors.serving``; this module only
knows the keys. Readers rebuild on a miss. Writers drop entries after commit:

- ``token_store`` calls :func:`invalidate` for every token write;
- any code that changes an account's status (needs_reconnect, disconnected,
  active again), slug, ``is_default``, ``allowed_domains`` or deletes it must
  call ``invalidate(account)`` after commit (``transaction.on_commit``). Saves
  through the ORM (``Model.save()``/``delete()``, the admin) are covered by the
  receivers below; queryset ``.update()`` calls are not and must call it.

The cache is an accelerator, never a dependency: when it fails (Redis down), a
read is a miss (the caller rebuilds from the database), a write or invalidation
is skipped with a warning (an entry missed that way lapses within ENTRY_TTL).
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from redis.exceptions import RedisError

from accounts.models import AccessToken, InstagramAccount

logger = logging.getLogger(__name__)
# What a failing cache backend raises: redis-py's errors, socket and file errors.
CACHE_ERRORS = (RedisError, OSError)

DEFAULT_KEY = "token:__default__"
# Entries are rebuilt at least this often even if an invalidation was missed (seconds).
ENTRY_TTL = 600


def key_for(slug: str) -> str:
    return f"token:slug:{slug}"


def _index_key(account_id: int) -> str:
    # The keys an account's entries were stored under (its slug may change later).
    return f"token:index:{account_id}"


# Each web process keeps what it read from the shared cache for at most
# TOKEN_CACHE_LOCAL_SECONDS (default 1 s): a hit then costs a dict lookup instead of
# a file read or a Redis round trip. invalidate() empties it at once in the process
# that calls it; other processes see the change when their copy lapses.
_local: dict[str, tuple[float, object]] = {}
_LOCAL_MAX_ENTRIES = 1024


def _local_seconds() -> float:
    return getattr(settings, "TOKEN_CACHE_LOCAL_SECONDS", 0)


def get(key: str):
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


def clear_local() -> None:
    """Forget this process's short-lived copies (tests; invalidate() does it per key)."""
    _local.clear()


def store(key: str, entry, *, timeout: int, account_id: int | None = None) -> None:
    try:
        cache.set(key, entry, timeout)
        if account_id is not None and key != DEFAULT_KEY:
            index_key = _index_key(account_id)
            known = cache.get(index_key) or []
            if key not in known:
                cache.set(index_key, [*known, key][-8:], 2 * ENTRY_TTL)
    except CACHE_ERRORS as exc:
        logger.warning("token cache write failed: %r", exc)
        return
    seconds = _local_seconds()
    if seconds > 0:
        _local[key] = (time.monotonic() + seconds, entry)


def delete(key: str) -> None:
    _local.pop(key, None)
    try:
        cache.delete(key)
    except CACHE_ERRORS as exc:
        logger.warning("token cache delete failed: %r", exc)


def invalidate_account_id(account_id: int | None, *, slugs: tuple[str, ...] = ()) -> None:
    keys = {DEFAULT_KEY, *(key_for(s) for s in slugs)}
    try:
        if account_id is not None:
            keys.update(cache.get(_index_key(account_id)) or ())
        cache.delete_many(sorted(keys))
    except CACHE_ERRORS as exc:
        # Never fails the write that triggered it (a refresh has already committed).
        logger.warning(
            "token cache invalidation failed; entries lapse within %ss: %r", ENTRY_TTL, exc
        )
    for key in keys:
        _local.pop(key, None)


def invalidate(account: InstagramAccount, *, slugs: tuple[str, ...] = ()) -> None:
    """Drop every cached copy that may serve ``account``: by its slug (current and
    any earlier one it was served under, plus ``slugs``) and as the default."""
    invalidate_account_id(account.pk, slugs=(account.slug, *slugs))


def _on_commit_invalidate(account_id: int | None, slug: str | None) -> None:
    slugs = (slug,) if slug else ()
    transaction.on_commit(lambda: invalidate_account_id(account_id, slugs=slugs))


@receiver(post_save, sender=InstagramAccount, dispatch_uid="token_cache_account_saved")
@receiver(post_delete, sender=InstagramAccount, dispatch_uid="token_cache_account_deleted")
def _account_changed(sender, instance: InstagramAccount, **kwargs) -> None:
    # Values are read now: after a delete the instance's pk is None by commit time.
    _on_commit_invalidate(instance.pk, instance.slug)


@receiver(post_save, sender=AccessToken, dispatch_uid="token_cache_token_saved")
@receiver(post_delete, sender=AccessToken, dispatch_uid="token_cache_token_deleted")
def _token_changed(sender, instance: AccessToken, **kwargs) -> None:
    _on_commit_invalidate(instance.account_id, None)
