"""The HTTP rules of the public URLs, as plain functions from what a request says
(:class:`Visit`) and what is served to an :class:`Answer` (status, headers, body).

No Django request or response here, so a view, a bare WSGI fast path or another
public URL with the same rules (the feed: ``accounts.feed_serving_policy``) can
share them. The generic rules:

- CORS (:func:`cors_headers`, :func:`preflight`): ``Vary: Origin`` always; an
  allowed ``Origin`` is echoed (``accounts.cors``);
- the ``.js`` gate (:func:`js_gate`): once a list is set, a script may only be
  loaded by a page whose Origin/Referer names a listed site or the agent itself;
  a request naming no site at all (a page with a no-referrer policy) is refused;
- caching (:func:`conditional`, :func:`revalidated`, :func:`uncached`): a strong
  ``ETag`` and 304, and
  ``Cache-Control: public`` while any site may load the answer, ``private`` once
  a list restricts it (the answer then depends on the requesting site, and the
  Referer the gate reads cannot be named in ``Vary``); errors are ``no-store``.

Then the token URLs' own answers (:func:`token_answer`). Status codes: unknown
account 404; unusable token (needs reconnect, disconnected, expired, unreadable)
503 with a JSON error. The ``.js`` variant answers an unusable token with **200**
and JavaScript that sets the global to ``null`` and logs why: browsers do not run
a script served with an error status (verified in Chromium by
tests/integration/test_browser_instafeed.py), so a 5xx would leave the global
undefined and the console silent. Refusals of the request itself (a bad
``?const=`` 400, a site outside ``ALLOWED_DOMAINS`` 403, unknown account 404) keep
their status; their bodies are harmless JavaScript too. ``?callback=`` (JSONP) is
not supported and is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks

from accounts import cors, crypto, snippets
from accounts.selectors.serving import TOKEN_UNREADABLE, ServedToken

if TYPE_CHECKING:
    from django.apps import AppConfig

JSON = "application/json"
JAVASCRIPT = "text/javascript; charset=utf-8"
PLAIN = "text/plain; charset=utf-8"
# What Django puts on a response that names no type (kept on 204/405 answers).
DEFAULT_TYPE = "text/html; charset=utf-8"
NO_STORE = "no-store"
READ_METHODS = ("GET", "HEAD")
# A cold cache during a database outage: answer 503 + Retry-After, never a 500.
OUTAGE_DETAIL = "The token agent cannot reach its database right now; try again shortly."
OUTAGE_RETRY_AFTER = "5"

NOT_LISTED = "this site is not allowed to load the Instagram token (ALLOWED_DOMAINS)."
NAMES_NO_SITE = (
    "this page sent neither Origin nor Referer, so the agent cannot tell whether its "
    "site may load the Instagram token (ALLOWED_DOMAINS). A page with a no-referrer "
    "policy must send at least its origin to the agent: add "
    "referrerpolicy=strict-origin-when-cross-origin (or origin) to this script tag."
)

Headers = tuple[tuple[str, str], ...]
AllowList = cors.AllowList | cors.Intersection


@dataclass(frozen=True, slots=True)
class Visit:
    """What the rules read from a request."""

    method: str
    origin: str | None = None
    referer: str | None = None
    if_none_match: str | None = None
    # ?const= on a .js URL (None: not given).
    const: str | None = None
    # ?limit= and ?after= on the feed URLs (None: not given).
    limit: str | None = None
    after: str | None = None
    # Accept-Encoding (the feed's answers are gzipped for browsers that ask).
    accept_encoding: str | None = None
    # How the browser addressed the agent, scheme://host[:port] (the .js gate lets
    # the agent's own pages in).
    agent_origin: str | None = None


def visit_of(
    meta: Mapping[str, Any],
    *,
    method: str,
    const: str | None,
    agent_origin: str,
    limit: str | None = None,
    after: str | None = None,
) -> Visit:
    """The :class:`Visit` of a request from its WSGI environ (a Django request's
    ``META`` is one): the one reading of a request for the views and the WSGI fast
    path (``accounts.fastpath``)."""
    return Visit(
        method=method,
        origin=meta.get("HTTP_ORIGIN"),
        referer=meta.get("HTTP_REFERER"),
        if_none_match=meta.get("HTTP_IF_NONE_MATCH"),
        accept_encoding=meta.get("HTTP_ACCEPT_ENCODING"),
        const=const,
        limit=limit,
        after=after,
        agent_origin=agent_origin,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str | bytes = ""
    content_type: str | None = DEFAULT_TYPE
    headers: Headers = ()
    # A deliberate answer, not a fault: not logged per request (a dead token
    # would otherwise log an ERROR per page view; it is alerted once).
    quiet: bool = False


# --- Generic rules ------------------------------------------------------------------------


def cors_headers(visit: Visit, allow: AllowList | None) -> Headers:
    """``Vary: Origin`` always; ``Access-Control-Allow-Origin`` for an allowed origin
    (``allow`` None: a refusal, which no origin may read)."""
    if allow is None:
        return (("Vary", "Origin"),)
    value = cors.allow_origin_header(visit.origin, allow)
    if not value:
        return (("Vary", "Origin"),)
    return (
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", value),
        ("Access-Control-Expose-Headers", "ETag"),
    )


def preflight(visit: Visit, allow: AllowList | None) -> Answer:
    headers = (
        ("Allow", cors.ALLOW_METHODS),
        ("Access-Control-Allow-Methods", cors.ALLOW_METHODS),
        ("Access-Control-Allow-Headers", cors.ALLOW_HEADERS),
        ("Access-Control-Max-Age", cors.PREFLIGHT_MAX_AGE),
    )
    return Answer(204, headers=headers + cors_headers(visit, allow))


def not_allowed() -> Answer:
    return Answer(405, headers=(("Allow", cors.ALLOW_METHODS),))


def js_gate(visit: Visit, allow: AllowList) -> str | None:
    """Why a page may not load a script from this URL, or None when it may.

    Unrestricted: any page. Once a list is set: the page's Origin and Referer, when
    sent, must each name a listed site or the agent itself, and at least one must
    be sent (a page can withhold both; it then names no listed site)."""
    if not allow.restricted:
        return None
    own = None
    named = False
    for value in (visit.origin, visit.referer):
        if not value:
            continue
        named = True
        origin = cors.origin_of(value) if value != "null" else None
        if origin is None:
            return NOT_LISTED
        if allow.allows(origin):
            continue
        own = own or cors.origin_of(visit.agent_origin)
        if origin != own:
            return NOT_LISTED
    return None if named else NAMES_NO_SITE


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match; lists and ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def cache_control(allow: AllowList, max_age: int) -> str:
    return f"{'private' if allow.restricted else 'public'}, max-age={max_age}"


def revalidated(
    visit: Visit,
    *,
    tag: str,
    caching: str,
    content_type: str,
    body: Callable[[], str | bytes],
    headers: Headers = (),
) -> Answer:
    """A 200 with ``body()`` (called only then) or a 304 for a matching
    ``If-None-Match``, with ``ETag``, ``Cache-Control: <caching>`` and ``headers``."""
    headers = (("ETag", tag), ("Cache-Control", caching), *headers)
    if etag_matches(visit.if_none_match, tag):
        return Answer(304, content_type=None, headers=headers)
    return Answer(200, body(), content_type, headers)


def conditional(
    visit: Visit,
    *,
    tag: str,
    max_age: int,
    allow: AllowList,
    content_type: str,
    body: Callable[[], str | bytes],
) -> Answer:
    """:func:`revalidated` with ``Cache-Control`` public or private (by ``allow``)
    for ``max_age`` seconds, and the CORS headers."""
    return revalidated(
        visit,
        tag=tag,
        caching=cache_control(allow, max_age),
        content_type=content_type,
        body=body,
        headers=cors_headers(visit, allow),
    )


def uncached(
    visit: Visit, allow: AllowList | None, body: str, *, status: int, content_type: str
) -> Answer:
    headers = (("Cache-Control", NO_STORE),) + cors_headers(visit, allow)
    return Answer(status, body, content_type, headers, quiet=True)


def outage(visit: Visit, body: str, *, status: int, content_type: str) -> Answer:
    answer = uncached(visit, None, body, status=status, content_type=content_type)
    return with_header(answer, "Retry-After", OUTAGE_RETRY_AFTER)


def with_header(answer: Answer, name: str, value: str) -> Answer:
    return Answer(
        answer.status, answer.body, answer.content_type, (*answer.headers, (name, value)), True
    )


# --- The token URLs -------------------------------------------------------------------------

# kind -> (ETag variant, content type, body from the entry and the token in clear)
_DATA_KINDS: dict[str, tuple[str, str, Callable[[ServedToken, str], str]]] = {
    "json": ("j", JSON, lambda entry, token: json_body(entry, token)),
    "plain": ("p", PLAIN, lambda entry, token: token),
}


def json_body(entry: ServedToken, token: str) -> str:
    """instatokend and Token Agent clients read ``token``; Instant-tokens clients ``Token``."""
    return json.dumps(
        {
            "token": token,
            "account": entry.slug,
            "username": entry.username,
            "expires_at": entry.expires_at,
            "Token": token,
        }
    )


def error_body(entry: ServedToken) -> str:
    return json.dumps({"error": entry.state, "detail": entry.detail, "account": entry.slug})


def token_answer(kind: str, visit: Visit, read: Callable[[], ServedToken | None]) -> Answer:
    """The answer of a token URL: ``kind`` is ``json``, ``plain`` or ``js``; ``read``
    returns the served entry (None while the database is unreachable) and is
    called at most once, only when the answer depends on it. The answer depends on
    the clock only through ``entry.max_age()``: the WSGI fast path reuses an answer
    while the request, the entry and its max-age are the same (accounts.fastpath)."""
    if visit.method not in READ_METHODS:
        if visit.method != "OPTIONS":
            return not_allowed()
        entry = read()
        return preflight(visit, entry.allow_list() if entry is not None else None)
    if kind == "js":
        return _js_answer(visit, read)
    return _data_answer(kind, visit, read())


def _data_answer(kind: str, visit: Visit, entry: ServedToken | None) -> Answer:
    """The JSON and plain-text variants (errors are JSON for both)."""
    if entry is None:
        body = json.dumps({"error": "unavailable", "detail": OUTAGE_DETAIL})
        return outage(visit, body, status=503, content_type=JSON)
    allow = entry.allow_list()
    if entry.ok:
        variant, content_type, render = _DATA_KINDS[kind]
        served = entry
        try:
            return conditional(
                visit,
                tag=served.etag(variant),
                max_age=served.max_age(),
                allow=allow,
                content_type=content_type,
                body=lambda: render(served, served.token()),
            )
        except crypto.InvalidToken:
            entry = entry.with_state(TOKEN_UNREADABLE)
    status = 404 if entry.not_found else 503
    return uncached(visit, allow, error_body(entry), status=status, content_type=JSON)


def js_name(visit: Visit) -> tuple[str, Answer | None]:
    """The global the snippet sets, or a refusal of the request."""
    if visit.const is None:
        name = settings.JS_CONSTANT_NAME
        problem = snippets.default_js_name_problem(name)
        if problem:
            message = f"JS_CONSTANT_NAME is not usable ({problem}); the agent's owner must fix it."
            body = snippets.js_refusal(message)
            return name, uncached(visit, None, body, status=500, content_type=JAVASCRIPT)
        return name, None
    problem = snippets.js_identifier_problem(visit.const)
    if problem:
        body = snippets.js_refusal(f"?const= refused: {problem}; nothing was set.")
        return visit.const, uncached(visit, None, body, status=400, content_type=JAVASCRIPT)
    return visit.const, None


def _js_answer(visit: Visit, read: Callable[[], ServedToken | None]) -> Answer:
    name, refusal = js_name(visit)
    if refusal is not None:
        return refusal
    entry = read()
    if entry is None:
        body = snippets.js_unusable(name, OUTAGE_DETAIL)
        return outage(visit, body, status=200, content_type=JAVASCRIPT)
    allow = entry.allow_list()
    why = js_gate(visit, allow)
    if why:
        body = snippets.js_refusal(why)
        return uncached(visit, allow, body, status=403, content_type=JAVASCRIPT)
    if entry.not_found:
        body = snippets.js_unusable(name, entry.detail)
        return uncached(visit, allow, body, status=404, content_type=JAVASCRIPT)
    if entry.ok:
        served = entry
        try:
            return conditional(
                visit,
                tag=served.etag(f"s-{name}"),
                max_age=served.max_age(),
                allow=allow,
                content_type=JAVASCRIPT,
                body=lambda: snippets.js_assign(name, served.token()),
            )
        except crypto.InvalidToken:
            entry = entry.with_state(TOKEN_UNREADABLE)
    # 200 so that browsers run it (see the module docstring); never cached.
    body = snippets.js_unusable(name, f"{entry.detail} ({entry.state})")
    answer = uncached(visit, allow, body, status=200, content_type=JAVASCRIPT)
    return with_header(answer, "X-Tokenagent-Error", entry.state)


# --- Settings check (registered by AccountsConfig.ready) ------------------------------------


def check_serving_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: object
) -> list[checks.CheckMessage]:
    """``ALLOWED_DOMAINS`` entries that match nothing, and an unusable ``JS_CONSTANT_NAME``."""
    messages: list[checks.CheckMessage] = []
    for problem in cors.validate(settings.ALLOWED_DOMAINS):
        messages.append(
            checks.Warning(
                f"ALLOWED_DOMAINS entry {problem}; it matches no site.",
                hint="List host names (example.com), origins (https://example.com:8443) "
                "or *.example.com, separated by spaces or commas.",
                id="tokenagent.W101",
            )
        )
    name_problem = snippets.js_identifier_problem(settings.JS_CONSTANT_NAME)
    if name_problem:
        messages.append(
            checks.Error(
                f"JS_CONSTANT_NAME cannot be used: {name_problem}.",
                hint="Use a plain JavaScript identifier such as InstagramToken.",
                id="tokenagent.E101",
            )
        )
    return messages
