"""The HTTP rules of the public feed URLs, as plain functions from a
``serving_policy.Visit`` and what is served to a ``serving_policy.Answer``.

The generic rules are ``serving_policy``'s, used as they are: CORS and the
preflight (``ALLOWED_DOMAINS`` narrowed per account, ``Vary: Origin``), the strong
``ETag`` and 304, ``Cache-Control`` public or private once a list restricts who may
read, ``no-store`` errors, the database-outage answer. What is the feed's own
(PRODUCT.md "Feed", docs/embed.md "Contract for the Django views"):

- ``/feed/<account>.json``, ``/feed.json``: the contract's JSON, ``?limit=N`` posts
  (1 to FEED_MAX_POSTS; more is capped); ``/feed/<account>/media``, ``/feed/media``:
  the Graph ``/me/media`` shape, ``?limit=N`` (1 to 100, default 25) and
  ``?after=<cursor>``. ``Cache-Control`` lasts until the next sync is expected.
  Statuses: unknown account 404; a malformed ``limit``/``after`` 400; an account
  whose feed was never read yet 503 (with ``Retry-After``: a site keeps its own
  content, a "Follow us" link, rather than an empty grid); a disconnected one 503.
  Once a snapshot exists it is always served (200), ``"stale": true`` when
  Instagram fails. Other query parameters (cache busters) are ignored.
- ``/feed/<account>.js``: the Instafeed.js adapter, public whatever the lists (it
  holds no secret; its feed request is where the site is checked).
- ``/feed/embed.js``, ``/feed/embed.css``: the files, public, an hour.
- ``/feed/img/<sha256>-<width>.jpg``: content-addressed, so immutable for a year; a
  malformed name is 404 before any read; a matching ``If-None-Match`` is 304 at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.encoding import iri_to_uri

from accounts import cors, feed_policy, snippets
from accounts.compression import gzipped
from accounts.selectors.feed import IMAGE_NAME, feed_graph_media, feed_payload
from accounts.selectors.served_feed import NOT_READY, ServedFeed
from accounts.serving_policy import (
    JAVASCRIPT,
    JSON,
    READ_METHODS,
    Answer,
    Visit,
    conditional,
    etag_matches,
    js_name,
    not_allowed,
    outage,
    preflight,
    revalidated,
    uncached,
    with_header,
)

FEED_JSON = "json"
FEED_MEDIA = "media"
CSS = "text/css; charset=utf-8"
# Graph's own page size and cap for /me/media (docs/instagram.md section 6).
MEDIA_PAGE_DEFAULT = 25
MEDIA_PAGE_MAX = 100
ADAPTER_MAX_AGE = 300  # the adapter's line names the account: a rename shows within minutes
STATIC_MAX_AGE = 3600  # embed.js/.css: stable URLs, so not immutable
IMAGE_CACHING = "public, max-age=31536000, immutable"
NOT_READY_RETRY_AFTER = "60"

_LIMIT = re.compile(r"[0-9]{1,6}")
# The cursors the agent hands out are post ids; Graph's are base64-like.
_CURSOR = re.compile(r"[0-9A-Za-z_-]{1,64}")
FEED_OUTAGE = "The agent cannot reach its database right now; try again shortly."


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A browser file the agent serves as it is (embed.js, embed.css, adapter.js)."""

    text: str
    content_type: str

    @property
    def tag(self) -> str:
        return f'"{hashlib.sha256(self.text.encode()).hexdigest()[:24]}"'


# --- /feed/<account>.json and /feed/<account>/media ------------------------------------------


def _error_body(code: str, detail: str, slug: str | None = None) -> str:
    body = {"error": code, "detail": detail}
    if slug:
        body["account"] = slug
    return json.dumps(body)


def _page(kind: str, visit: Visit) -> tuple[int, str] | str:
    """``(limit, after)`` from the query, or why it is refused (never echoing it)."""
    cap = feed_policy.setting("FEED_MAX_POSTS") if kind == FEED_JSON else MEDIA_PAGE_MAX
    limit = cap if kind == FEED_JSON else MEDIA_PAGE_DEFAULT
    if visit.limit is not None:
        if not _LIMIT.fullmatch(visit.limit) or int(visit.limit) < 1:
            return f"limit must be a positive whole number (at most {cap} are served)."
        limit = min(int(visit.limit), cap)
    after = ""
    if kind == FEED_MEDIA and visit.after is not None:
        if not _CURSOR.fullmatch(visit.after):
            return "after must be a cursor from this feed's paging."
        after = visit.after
    return limit, after


# Rendered bodies by ETag, per process: the tag names everything a body depends on
# (the snapshot, the kind, limit, cursor, stale flag, host and path), so a hit is
# always right. Bounded: emptied when full.
# Kept encoded: every answer of a tag shares one bytes object.
_BODIES: dict[str, bytes] = {}
BODIES_MAX = 128


def _rendered(tag: str, render: Callable[[], bytes]) -> bytes:
    body = _BODIES.get(tag)
    if body is None:
        if len(_BODIES) >= BODIES_MAX:
            _BODIES.clear()
        body = _BODIES[tag] = render()
    return body


def _body(
    kind: str,
    entry: ServedFeed,
    *,
    limit: int,
    after: str,
    stale: bool,
    base_url: str,
    page_url: str,
) -> bytes:
    posts = list(entry.posts)
    if kind == FEED_JSON:
        data = feed_payload(
            posts=posts,
            account_slug=entry.slug or "",
            username=entry.username,
            synced_at=entry.synced_at,
            stale=stale,
            base_url=base_url,
            limit=limit,
        )
    else:
        data = feed_graph_media(
            posts=posts,
            username=entry.username,
            base_url=base_url,
            page_url=page_url,
            limit=limit,
            after=after,
        )
    return json.dumps(data).encode()


def clock_stamp(entry: ServedFeed | None, *, now: datetime | None = None) -> object:
    """What of ``entry`` a feed answer takes from the clock (its max-age and whether
    it is stale): the same request and entry with the same stamp get the same
    answer, which lets the fast path reuse one. Both only move one way in time."""
    if entry is None or not entry.ok:
        return None
    now = now or timezone.now()
    return (entry.max_age(now=now), entry.stale(now=now))


def feed_answer(
    kind: str,
    visit: Visit,
    read: Callable[[], ServedFeed | None],
    *,
    path: str,
    now: datetime | None = None,
) -> Answer:
    """The answer of a feed URL (gzipped as ``accounts.compression`` says): ``kind``
    is ``json`` or ``media``; ``read`` returns the served entry (None while the
    database is unreachable), called at most once; ``path`` is the URL's path
    (``paging.next``; the image URLs are on the agent's origin as the browser named
    it, ``visit.agent_origin``)."""
    base_url = iri_to_uri(f"{visit.agent_origin}/")
    page_url = iri_to_uri(f"{visit.agent_origin}{path}")
    answer = _feed_answer(kind, visit, read, base_url=base_url, page_url=page_url, now=now)
    return gzipped(visit, answer)


def _feed_answer(
    kind: str,
    visit: Visit,
    read: Callable[[], ServedFeed | None],
    *,
    base_url: str,
    page_url: str,
    now: datetime | None,
) -> Answer:
    if visit.method not in READ_METHODS:
        if visit.method != "OPTIONS":
            return not_allowed()
        found = read()
        return preflight(visit, found.allow_list() if found is not None else None)
    entry = read()
    if entry is None:
        body = _error_body("unavailable", FEED_OUTAGE)
        return outage(visit, body, status=503, content_type=JSON)
    allow = entry.allow_list()
    if entry.not_found:
        body = _error_body(entry.state, entry.detail, entry.slug)
        return uncached(visit, allow, body, status=404, content_type=JSON)
    page = _page(kind, visit)
    if isinstance(page, str):
        body = _error_body("bad_request", page, entry.slug)
        return uncached(visit, allow, body, status=400, content_type=JSON)
    if not entry.ok:
        body = _error_body(entry.state, entry.detail, entry.slug)
        answer = uncached(visit, allow, body, status=503, content_type=JSON)
        if entry.state == NOT_READY:
            answer = with_header(answer, "Retry-After", NOT_READY_RETRY_AFTER)
        return answer
    limit, after = page
    now = now or timezone.now()
    stale = entry.stale(now=now)
    # The body depends on the host too (image URLs are absolute): it is in the tag.
    variant = "|".join((kind, str(limit), after, str(stale), base_url, page_url))
    tag = entry.etag(hashlib.sha256(variant.encode()).hexdigest()[:12])
    return conditional(
        visit,
        tag=tag,
        max_age=entry.max_age(now=now),
        allow=allow,
        content_type=JSON,
        body=lambda: _rendered(
            tag,
            lambda: _body(
                kind,
                entry,
                limit=limit,
                after=after,
                stale=stale,
                base_url=base_url,
                page_url=page_url,
            ),
        ),
    )


# --- /feed/<account>.js: the Instafeed.js adapter ------------------------------------------


def adapter_header(name: str, media_url: str) -> str:
    """The one per-request line before adapter.js (values as JSON string literals;
    ``name`` already validated)."""
    return (
        "(window.__tokenagentFeeds = window.__tokenagentFeeds || []).push("
        f'{{"name": {snippets.js_string(name)}, "media": {snippets.js_string(media_url)}}});\n'
    )


def adapter_answer(
    visit: Visit,
    read: Callable[[], ServedFeed | None],
    *,
    media_url: str,
    adapter: StaticFile,
) -> Answer:
    """``read`` returns the served entry (None: the database is unreachable); only
    whether the account exists matters. The global's name is checked as for
    ``/token/<account>.js`` (``?const=``, else ``JS_CONSTANT_NAME``); refusals are
    harmless JavaScript that logs why. Gzipped as ``accounts.compression`` says."""
    return gzipped(visit, _adapter_answer(visit, read, media_url=media_url, adapter=adapter))


def _adapter_answer(
    visit: Visit,
    read: Callable[[], ServedFeed | None],
    *,
    media_url: str,
    adapter: StaticFile,
) -> Answer:
    if visit.method not in READ_METHODS:
        if visit.method != "OPTIONS":
            return not_allowed()
        return preflight(visit, cors.global_allow_list())
    name, refusal = js_name(visit)
    if refusal is not None:
        return refusal
    entry = read()
    if entry is None:
        return outage(visit, snippets.js_refusal(FEED_OUTAGE), status=503, content_type=JAVASCRIPT)
    if entry.not_found:
        body = snippets.js_refusal(f"{entry.detail} Nothing was set.")
        return uncached(visit, None, body, status=404, content_type=JAVASCRIPT)
    header = adapter_header(name, media_url)
    digest = hashlib.sha256(f"{adapter.tag}|{header}".encode()).hexdigest()[:24]
    return revalidated(
        visit,
        tag=f'"{digest}"',
        caching=f"public, max-age={ADAPTER_MAX_AGE}",
        content_type=JAVASCRIPT,
        body=lambda: header + adapter.text,
    )


# --- /feed/embed.js, /feed/embed.css ----------------------------------------------------------


def static_answer(visit: Visit, file: StaticFile) -> Answer:
    """Gzipped as ``accounts.compression`` says."""
    return gzipped(visit, _static_answer(visit, file))


def _static_answer(visit: Visit, file: StaticFile) -> Answer:
    if visit.method not in READ_METHODS:
        if visit.method != "OPTIONS":
            return not_allowed()
        return preflight(visit, cors.global_allow_list())
    return revalidated(
        visit,
        tag=file.tag,
        caching=f"public, max-age={STATIC_MAX_AGE}",
        content_type=file.content_type,
        body=lambda: file.text,
    )


# --- /feed/img/<sha256>-<width>.jpg -------------------------------------------------------------


def image_answer(visit: Visit, name: str, read: Callable[[], tuple[bytes, str] | None]) -> Answer:
    """``read`` returns the stored bytes and their type, or None when no such
    picture is stored (it raises DatabaseError during an outage)."""
    if visit.method not in READ_METHODS:
        if visit.method != "OPTIONS":
            return not_allowed()
        return preflight(visit, cors.global_allow_list())
    match = IMAGE_NAME.fullmatch(name)
    missing = _error_body("not_found", "No such picture on this agent.")
    if match is None:
        return uncached(visit, None, missing, status=404, content_type=JSON)
    tag = f'"{match["sha256"]}"'
    headers = (("Cross-Origin-Resource-Policy", "cross-origin"),)
    # Content-addressed: the name is the hash of the bytes, so a copy a client holds
    # under this tag is the right one forever; a 304 needs no read. Else the bytes.
    content, content_type = b"", ""  # what a 304 needs
    if not etag_matches(visit.if_none_match, tag):
        found = read()
        if found is None:
            return uncached(visit, None, missing, status=404, content_type=JSON)
        content, content_type = found
    return revalidated(
        visit,
        tag=tag,
        caching=IMAGE_CACHING,
        content_type=content_type,
        body=lambda: content,
        headers=headers,
    )
