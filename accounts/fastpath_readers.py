"""The public reads the WSGI fast path (``accounts.fastpath``) stands in for, by the
view Django would call: for each, how to read its served entry from the cache
alone (``Miss`` when only the database knows) and which of the view's own rules
answers it (``serving_policy.token_answer``, ``feed_serving_policy.feed_answer``,
``feed_serving_policy.image_answer``).

The token URLs and the feed's JSON and ``/media`` read their served entries; a
mirrored picture's bytes come from this process's copy of the pictures it served
lately (``selectors.served_images``; a revalidation is a 304, a malformed name a
404, both without bytes). A picture not in the copy is Django's: its bytes are in
the database (``FEED_IMAGE_STORAGE``), which only Django reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts import feed_serving_policy, serving_policy
from accounts.selectors import served_images, serving
from accounts.selectors.served_feed import cached_feed
from accounts.views import feed, public


class Miss(Exception):
    """The answer needs what only Django may do (a database read)."""


@dataclass(frozen=True)
class Reader:
    """How the fast path answers one kind of public read: ``fetch`` reads the served
    entry for the URL's arguments from the cache (raising ``Miss`` when only the
    database knows), ``answer`` is the view's own rule (``(visit, read, path,
    arguments) -> Answer``, ``read`` returning the entry), and ``stamp``
    is what of the entry the answer takes from the clock (a max-age): the same
    request, entry and stamp give the same answer, which is what lets an answer be
    reused."""

    fetch: Callable[[dict[str, Any]], Any]
    answer: Callable[
        [serving_policy.Visit, Callable[[], Any], str, dict[str, Any]], serving_policy.Answer
    ]
    stamp: Callable[[Any], object]


def _cached(lookup: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """A ``fetch``: ``lookup``'s entry from the cache alone, ``Miss`` on None."""

    def fetch(kwargs: dict[str, Any]) -> Any:
        found = lookup(kwargs)
        if found is None:
            raise Miss
        return found

    return fetch


def _token_reader(kind: str) -> Reader:
    return Reader(
        fetch=_cached(lambda kwargs: serving.cached_token(kwargs.get("slug"))),
        answer=lambda visit, read, path, kwargs: serving_policy.token_answer(kind, visit, read),
        stamp=lambda entry: entry.max_age(),
    )


def _feed_reader(kind: str) -> Reader:
    return Reader(
        fetch=_cached(lambda kwargs: cached_feed(kwargs.get("slug"))),
        answer=lambda visit, read, path, kwargs: feed_serving_policy.feed_answer(
            kind, visit, read, path=path
        ),
        stamp=lambda entry: feed_serving_policy.clock_stamp(entry),
    )


# The views the fast path stands in for, with the same rule each calls.
READERS: dict[Callable[..., Any], Reader] = {
    public.token_json: _token_reader("json"),
    public.token_plain: _token_reader("plain"),
    public.token_js: _token_reader("js"),
    feed.feed_json: _feed_reader(feed_serving_policy.FEED_JSON),
    feed.feed_media: _feed_reader(feed_serving_policy.FEED_MEDIA),
    feed.feed_image: Reader(
        fetch=_cached(lambda kwargs: served_images.cached_image(kwargs["name"])),
        answer=lambda visit, read, path, kwargs: feed_serving_policy.image_answer(
            visit, kwargs["name"], read
        ),
        stamp=lambda entry: None,
    ),
}
