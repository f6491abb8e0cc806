"""The public token endpoints: ``/token/<account>.json``, ``.js`` and plain text,
and ``/token.json``, ``/token.js``, ``/token`` for the default account.

Each view validates the request, reads the served entry (one cache get) and
shapes the response: CORS, ``Cache-Control``, ``ETag``/304. What is served, and
how the JavaScript is written, is decided in ``accounts.selectors.serving``.

Status codes: unknown account 404; unusable token (needs reconnect,
disconnected, expired, unreadable) 503 with a JSON error and ``no-store``. The
``.js`` variant answers an unusable token with **200** and JavaScript that sets
the global to ``null`` and logs why: browsers do not run a script served with an
error status (verified in Chromium by tests/integration/test_browser_instafeed.py),
so a 5xx would leave the global undefined and the console silent. Refusals of
the request itself (a bad ``?const=`` 400, a site outside ``ALLOWED_DOMAINS``
403, unknown account 404) keep their status; their bodies are harmless
JavaScript too. ``?callback=`` (JSONP) is not supported and is ignored.
"""

import json
import logging
from functools import partial

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import cors, crypto
from accounts.selectors import serving

JSON = "application/json"
JAVASCRIPT = "text/javascript; charset=utf-8"
PLAIN = "text/plain; charset=utf-8"
NO_STORE = "no-store"
_READ_METHODS = ("GET", "HEAD")
# A cold cache during a database outage: answer 503 + Retry-After, never a 500.
OUTAGE_DETAIL = "The token agent cannot reach its database right now; try again shortly."
OUTAGE_RETRY_AFTER = "5"

logger = logging.getLogger(__name__)


def _served(slug: str | None) -> dict | None:
    """The served entry, or None while the database is unreachable (cache miss)."""
    try:
        return serving.served_token(slug)
    except DatabaseError as exc:
        logger.warning("token endpoint: database unavailable (%s)", type(exc).__name__)
        return None


def _outage(request: HttpRequest, body: str, *, status: int, content_type: str) -> HttpResponse:
    response = _uncached(request, None, body, status=status, content_type=content_type)
    response["Retry-After"] = OUTAGE_RETRY_AFTER
    return response


def _add_cors(response: HttpResponse, request: HttpRequest, allow) -> HttpResponse:
    """``Vary: Origin`` always; ``Access-Control-Allow-Origin`` for an allowed origin
    (``allow`` None: a refusal, which no origin may read)."""
    response["Vary"] = "Origin"
    if allow is None:
        return response
    value = cors.allow_origin_header(request.META.get("HTTP_ORIGIN"), allow)
    if value:
        response["Access-Control-Allow-Origin"] = value
        response["Access-Control-Expose-Headers"] = "ETag"
    return response


def _preflight(request: HttpRequest, slug: str | None) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Allow"] = cors.ALLOW_METHODS
    response["Access-Control-Allow-Methods"] = cors.ALLOW_METHODS
    response["Access-Control-Allow-Headers"] = cors.ALLOW_HEADERS
    response["Access-Control-Max-Age"] = cors.PREFLIGHT_MAX_AGE
    return _add_cors(response, request, serving.allow_list(serving.served_token(slug)))


def _not_allowed(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=405)
    response["Allow"] = cors.ALLOW_METHODS
    return response


def _matches(if_none_match: str, tag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match; lists and ``*``."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def _cached(request: HttpRequest, entry: dict, variant: str, allow, content_type: str, render):
    """A 200 with ``render(token)`` or a 304 (no decryption needed), with the caching
    headers; None when the token cannot be decrypted."""
    tag = serving.etag(entry, variant)
    inm = request.META.get("HTTP_IF_NONE_MATCH")
    if inm and _matches(inm, tag):
        response = HttpResponse(status=304)
        del response["Content-Type"]
    else:
        try:
            token = serving.token_value(entry)
        except crypto.InvalidToken:
            return None
        response = HttpResponse(render(token), content_type=content_type)
    response["ETag"] = tag
    response["Cache-Control"] = f"public, max-age={serving.max_age(entry)}"
    return _add_cors(response, request, allow)


def _uncached(request, allow, content, *, status: int, content_type: str) -> HttpResponse:
    response = HttpResponse(content, status=status, content_type=content_type)
    response["Cache-Control"] = NO_STORE
    # Deliberate answers, not faults: keep django.request from logging each hit
    # (a dead token would otherwise log an ERROR per page view; it is alerted once).
    response._has_been_logged = True
    return _add_cors(response, request, allow)


def _serve_data(request: HttpRequest, slug: str | None, variant: str) -> HttpResponse:
    """The JSON and plain-text variants (errors are JSON for both)."""
    if request.method not in _READ_METHODS:
        return _preflight(request, slug) if request.method == "OPTIONS" else _not_allowed(request)
    entry = _served(slug)
    if entry is None:
        body = json.dumps({"error": "unavailable", "detail": OUTAGE_DETAIL})
        return _outage(request, body, status=503, content_type=JSON)
    allow = serving.allow_list(entry)
    state = entry["state"]
    if state == serving.OK:
        if variant == "json":
            response = _cached(request, entry, "j", allow, JSON, partial(serving.json_body, entry))
        else:
            response = _cached(request, entry, "p", allow, PLAIN, str)
        if response is not None:
            return response
        entry = serving.with_state(entry, serving.TOKEN_UNREADABLE)
        state = entry["state"]
    status = 404 if state in serving.NOT_FOUND_STATES else 503
    return _uncached(request, allow, serving.error_body(entry), status=status, content_type=JSON)


def _referer_allowed(request: HttpRequest, allow) -> bool:
    """The ``.js`` gate once a list is set: the page's Origin and Referer, when
    sent, must name a listed site or the agent itself. No header: allowed."""
    own = None
    for header in ("HTTP_ORIGIN", "HTTP_REFERER"):
        value = request.META.get(header)
        if not value:
            continue
        origin = cors.origin_of(value) if value != "null" else None
        if origin is None:
            return False
        if allow.allows(origin):
            continue
        own = own or cors.origin_of(request.build_absolute_uri("/"))
        if origin != own:
            return False
    return True


def _serve_js(request: HttpRequest, slug: str | None) -> HttpResponse:
    if request.method not in _READ_METHODS:
        return _preflight(request, slug) if request.method == "OPTIONS" else _not_allowed(request)
    name = request.GET.get("const")
    if name is None:
        name = settings.JS_CONSTANT_NAME
        problem = serving.default_js_name_problem(name)
        if problem:
            message = f"JS_CONSTANT_NAME is not usable ({problem}); the agent's owner must fix it."
            return _uncached(
                request, None, serving.js_refusal(message), status=500, content_type=JAVASCRIPT
            )
    else:
        problem = serving.js_identifier_problem(name)
        if problem:
            message = f"?const= refused: {problem}; nothing was set."
            return _uncached(
                request, None, serving.js_refusal(message), status=400, content_type=JAVASCRIPT
            )
    entry = _served(slug)
    if entry is None:
        body = serving.js_unusable(name, OUTAGE_DETAIL)
        return _outage(request, body, status=200, content_type=JAVASCRIPT)
    allow = serving.allow_list(entry)
    if allow.restricted and not _referer_allowed(request, allow):
        message = "this site is not allowed to load the Instagram token (ALLOWED_DOMAINS)."
        return _uncached(
            request, allow, serving.js_refusal(message), status=403, content_type=JAVASCRIPT
        )
    state = entry["state"]
    if state in serving.NOT_FOUND_STATES:
        body = serving.js_unusable(name, entry["detail"])
        return _uncached(request, allow, body, status=404, content_type=JAVASCRIPT)
    if state == serving.OK:
        render = partial(serving.js_assign, name)
        response = _cached(request, entry, f"s-{name}", allow, JAVASCRIPT, render)
        if response is not None:
            return response
        entry = serving.with_state(entry, serving.TOKEN_UNREADABLE)
    # 200 so that browsers run it (see the module docstring); never cached.
    body = serving.js_unusable(name, f"{entry['detail']} ({entry['state']})")
    response = _uncached(request, allow, body, status=200, content_type=JAVASCRIPT)
    response["X-Tokenagent-Error"] = entry["state"]
    return response


@csrf_exempt
def token_json(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve_data(request, slug, "json")


@csrf_exempt
def token_plain(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve_data(request, slug, "plain")


@csrf_exempt
def token_js(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve_js(request, slug)
