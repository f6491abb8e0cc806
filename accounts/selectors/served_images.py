"""Reads for ``/feed/img/<sha256>-<width>.jpg``: a mirrored picture's bytes as
served, through a bounded copy in each web process of the pictures it served last.

A visitor's page loads 10 to 50 pictures, and their bytes are in the database by
default (``feed_storage``): a read costs a query and Django's whole stack, some
ten times a token read (bench/token_endpoints, ``img``). The names are
content-addressed, so a kept copy is right for as long as the picture is stored at
all; pictures are only ever deleted together (``feed_storage.images_delete_unused``,
one sync after their post left every feed), which drops the shared *generation*
(``token_cache.IMAGES_KEY``). A copy is served only under the generation it was
read in, so every process stops serving deleted pictures once it sees the new
generation (its short-lived copy of the key lapses, TOKEN_CACHE_LOCAL_SECONDS).

The copy holds at most FEED_IMAGE_MEMORY_BYTES per process, the least recently
served dropped first, and only pictures the database holds: requests for names
that do not exist store nothing. :func:`cached_image` never queries the database
(the WSGI fast path answers from it and hands a miss to Django's view, which calls
:func:`served_image`).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from django.conf import settings

from accounts import token_cache
from accounts.selectors import feed as feed_selectors

Picture = tuple[bytes, str]  # (bytes, content type)

_copies: OrderedDict[str, tuple[str, Picture]] = OrderedDict()
_held = 0
_lock = threading.Lock()


def _budget() -> int:
    return int(getattr(settings, "FEED_IMAGE_MEMORY_BYTES", 0) or 0)


def cached_image(name: str) -> Picture | None:
    """The picture ``name`` names as this process's copy holds it under the current
    generation, or None (only the database can tell)."""
    generation = token_cache.get(token_cache.IMAGES_KEY)
    if not isinstance(generation, str):
        return None
    with _lock:
        kept = _copies.get(name)
        if kept is None or kept[0] != generation:
            return None
        _copies.move_to_end(name)
        return kept[1]


def served_image(name: str) -> Picture | None:
    """The picture ``name`` names, or None when no such picture is stored (raises
    DatabaseError during an outage). Kept for the next reads when it fits."""
    if _budget() <= 0:
        return feed_selectors.feed_image_get(name=name)
    found = cached_image(name)
    if found is not None:
        return found
    # Read before the database: a deletion committing after this read drops it.
    generation = token_cache.get(token_cache.IMAGES_KEY)
    found = feed_selectors.feed_image_get(name=name)
    if found is None:
        return None  # nothing stored for a name that does not exist
    if isinstance(generation, str):
        _keep(name, generation, found)
    else:
        # The first picture since the last deletion starts a generation; it is kept
        # from its next read (a deletion may have committed since this one).
        token_cache.store(
            token_cache.IMAGES_KEY, secrets.token_hex(8), timeout=token_cache.ENTRY_TTL
        )
    return found


def _keep(name: str, generation: str, picture: Picture) -> None:
    global _held
    size, budget = len(picture[0]), _budget()
    if size > budget // 4:
        return
    with _lock:
        old = _copies.pop(name, None)
        if old is not None:
            _held -= len(old[1][0])
        while _copies and _held + size > budget:
            _, (_, dropped) = _copies.popitem(last=False)
            _held -= len(dropped[0])
        _copies[name] = (generation, picture)
        _held += size


def forget() -> None:
    """Empty this process's copy (tests)."""
    global _held
    with _lock:
        _copies.clear()
        _held = 0
