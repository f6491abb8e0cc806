"""The public feed URLs: ``/feed/<account>.json`` and ``/feed.json`` (the feed),
``/feed/<account>/media`` and ``/feed/media`` (the Graph ``/me/media`` shape),
``/feed/<account>.js`` and ``/feed.js`` (the Instafeed.js adapter),
``/feed/embed.js`` and ``/feed/embed.css`` (the embed), ``/feed/img/<name>`` (the
mirrored pictures).

Each view reads the request into a ``serving_policy.Visit``, makes one selector
call (``served_feed``: one cache get when warm; a picture: ``served_images``, a
dict lookup when this process served it lately, else one database read) and
turns ``accounts.feed_serving_policy``'s answer into a response. The JSON and the
scripts are gzipped for browsers that ask (``accounts.compression``: they hold no
secret, so compression leaks nothing; 50 posts of JSON shrink about eightfold);
JPEG pictures are not. The WSGI fast path (``accounts.fastpath``) answers the feed
and picture reads it can from the same rules.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from accounts import feed_serving_policy as policy
from accounts import serving_policy
from accounts.selectors import served_images
from accounts.selectors.served_feed import ServedFeed, served_feed
from accounts.views.public import response_of, visit_of

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static/accounts/feed"


@cache
def _file(name: str, content_type: str) -> policy.StaticFile:
    """A file of accounts/static/accounts/feed/, read once per process."""
    return policy.StaticFile((STATIC / name).read_text(encoding="utf-8"), content_type)


def _served(slug: str | None) -> ServedFeed | None:
    """The served entry, or None while the database is unreachable (cache miss)."""
    try:
        return served_feed(slug)
    except DatabaseError as exc:
        logger.warning("feed endpoint: database unavailable (%s)", type(exc).__name__)
        return None


def _feed(request: HttpRequest, slug: str | None, kind: str) -> HttpResponse:
    answer = policy.feed_answer(kind, visit_of(request), lambda: _served(slug), path=request.path)
    return response_of(answer)


@csrf_exempt
def feed_json(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _feed(request, slug, policy.FEED_JSON)


@csrf_exempt
def feed_media(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _feed(request, slug, policy.FEED_MEDIA)


@csrf_exempt
def feed_adapter_js(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    media = (
        reverse("accounts:feed-media", args=[slug])
        if slug
        else reverse("accounts:default-feed-media")
    )
    answer = policy.adapter_answer(
        visit_of(request),
        lambda: _served(slug),
        media_url=request.build_absolute_uri(media),
        adapter=_file("adapter.js", serving_policy.JAVASCRIPT),
    )
    return response_of(answer)


@csrf_exempt
def feed_embed_js(request: HttpRequest) -> HttpResponse:
    file = _file("embed.js", serving_policy.JAVASCRIPT)
    return response_of(policy.static_answer(visit_of(request), file))


@csrf_exempt
def feed_embed_css(request: HttpRequest) -> HttpResponse:
    file = _file("embed.css", policy.CSS)
    return response_of(policy.static_answer(visit_of(request), file))


@csrf_exempt
def feed_image(request: HttpRequest, name: str) -> HttpResponse:
    visit = visit_of(request)
    try:
        answer = policy.image_answer(visit, name, lambda: served_images.served_image(name))
    except DatabaseError as exc:
        logger.warning("feed image: database unavailable (%s)", type(exc).__name__)
        body = policy.FEED_OUTAGE
        answer = serving_policy.outage(visit, body, status=503, content_type=serving_policy.PLAIN)
    return response_of(answer)
