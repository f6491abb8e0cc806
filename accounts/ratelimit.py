"""Abuse limits on the entry points a stranger can hammer: ``/login/`` (and the
client invite links, which start a sign-in too), Django's ``/admin/login/``, the
OAuth callback, ``/hooks/refresh/`` and Meta's two callbacks.

One middleware applies django-ratelimit's core (``django_ratelimit.core.get_usage``)
by path, so the views stay unaware of it. Counters live in the cache alias
``RATELIMIT_USE_CACHE`` ("ratelimit"): on a one-machine install a file cache in a
folder of its own (the count is approximate there: that backend has no atomic
increment), so nothing stored in the token cache can cull a counter; without Redis on
PostgreSQL a table of its own, with an atomic increment (tokenagent/cache.py); on Redis a key
prefix of their own in the one Redis, where no public request stores a key of its
own choosing, so no flood can fill it. Each client address gets its own counter
per group; over the limit the request is refused with ``429 Too Many Requests``
and ``Retry-After`` (seconds to the end of the window) before any session,
database or view work is done.

The token URLs (``/token...``) are never limited: websites' visitors fetch them
many times a day and they are served from the cache.

Settings (``tokenagent/settings.py``): ``RATELIMIT_ENABLE``, ``RATELIMIT_USE_CACHE``,
``RATELIMIT_LOGIN``, ``RATELIMIT_ADMIN_LOGIN``, ``RATELIMIT_OAUTH_CALLBACK``,
``RATELIMIT_HOOK``, ``RATELIMIT_META_CALLBACKS``
(django-ratelimit rates such as ``"20/m"`` or ``"100/5m"``; ``off`` turns that
limit off; anything else stops the process at start) and
``RATELIMIT_PROXY_COUNT``: how many trusted proxies append to
``X-Forwarded-For`` in front of the app (1 on Heroku, whose router appends the
address it saw; 0 when clients connect directly, and then the header, which
anyone can forge, is ignored).

If the cache cannot be reached the limit fails open (the request goes through
and a warning is logged): an outage of Redis (or of the database cache) must not
lock the owner out.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    group: str
    setting: str
    paths: frozenset[str]
    # Browser pages get a small HTML page, machine endpoints JSON.
    html: bool
    prefixes: tuple[str, ...] = ()


def _paths(*paths: str) -> frozenset[str]:
    """Each path with and without its trailing slash."""
    return frozenset(v for p in paths for v in (p, p.rstrip("/")))


RULES = (
    # Starting a sign-in, or a client's invite link, creates a session and an OAuth
    # state row: both count against the sign-in budget.
    Rule("login", "RATELIMIT_LOGIN", _paths("/login/"), html=True, prefixes=("/invite/",)),
    # Django's admin takes passwords: its own budget, so guessing there cannot use up
    # the owner's Instagram sign-ins (and the reverse).
    Rule("admin-login", "RATELIMIT_ADMIN_LOGIN", _paths("/admin/login/"), html=True),
    Rule("oauth-callback", "RATELIMIT_OAUTH_CALLBACK", _paths("/oauth/instagram/callback/"), True),
    Rule("refresh-hook", "RATELIMIT_HOOK", _paths("/hooks/refresh/"), html=False),
    Rule(
        "meta-callbacks",
        "RATELIMIT_META_CALLBACKS",
        _paths("/instagram/deauthorize/", "/instagram/data-deletion/"),
        html=False,
    ),
)
_BY_PATH = {path: rule for rule in RULES for path in rule.paths}


_BY_PREFIX = tuple((prefix, rule) for rule in RULES for prefix in rule.prefixes)


def rule_for(path: str) -> Rule | None:
    """The rule a request path falls under; None for everything else (token URLs)."""
    rule = _BY_PATH.get(path)
    if rule is None:
        for prefix, candidate in _BY_PREFIX:
            if path.startswith(prefix):
                return candidate
    return rule


_RATE = re.compile(r"\d+/\d*[smhd]")
OFF = ("", "off")


def rate_of(rule: Rule) -> str | None:
    """The rule's rate from settings (``"20/m"``, ``"100/5m"``), or None when it is
    ``off`` (or empty). Raises ImproperlyConfigured for anything else."""
    rate = str(getattr(settings, rule.setting, "") or "").strip()
    if rate.lower() in OFF:
        return None
    if not _RATE.fullmatch(rate):
        raise ImproperlyConfigured(
            f"{rule.setting} must be a rate like 20/m or 100/5m (count/[n]s|m|h|d) or off."
        )
    return rate


def _masked(address: str) -> str | None:
    """One counter per IPv4 address and per IPv6 /64 (one subscriber's block)."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def client_address(request: HttpRequest) -> str:
    """The address a limit counts against.

    With ``RATELIMIT_PROXY_COUNT`` = n > 0, the n-th ``X-Forwarded-For`` entry from
    the right (the one the outermost trusted proxy saw); entries to its left are
    client-supplied and never used. Falls back to ``REMOTE_ADDR``."""
    proxies = getattr(settings, "RATELIMIT_PROXY_COUNT", 0)
    if proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if len(forwarded) >= proxies:
            address = _masked(forwarded[-proxies])
            if address:
                return address
    return _masked(request.META.get("REMOTE_ADDR") or "") or "unknown"


def _key(group: str, request: HttpRequest) -> str:
    return client_address(request)


def _refusal(rule: Rule, retry_after: int) -> HttpResponse:
    message = (
        f"Too many requests from your address; try again in {retry_after} "
        f"second{'s' if retry_after != 1 else ''}."
    )
    if rule.html:
        response = HttpResponse(
            "<!doctype html><title>Too many requests</title>"
            f"<h1>Too many requests</h1><p>{escape(message)}</p>",
            status=429,
            content_type="text/html; charset=utf-8",
        )
    else:
        response = JsonResponse(
            {"error": "rate_limited", "detail": message, "retry_after": retry_after},
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    # Logged once per window by the middleware; keep django.request from adding a
    # warning per refused request.
    response._has_been_logged = True  # type: ignore[attr-defined]  # django.utils.log's flag
    return response


class RateLimitMiddleware:
    """Counts and refuses by path; placed early in ``MIDDLEWARE`` so a refused
    request costs one cache round trip and nothing else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        for rule in RULES:
            rate_of(rule)  # a typo in a rate stops the process at start, not each request
        alias = getattr(settings, "RATELIMIT_USE_CACHE", "default")
        if getattr(settings, "RATELIMIT_ENABLE", True) and alias not in settings.CACHES:
            raise ImproperlyConfigured(f"RATELIMIT_USE_CACHE names no cache in CACHES: {alias!r}")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rule = rule_for(request.path_info)
        if rule is not None:
            refusal = self._check(request, rule)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _check(self, request: HttpRequest, rule: Rule) -> HttpResponse | None:
        rate = rate_of(rule)
        if rate is None:
            return None
        try:
            usage = get_usage(
                request, group=f"tokenagent:{rule.group}", key=_key, rate=rate, increment=True
            )
        except (RedisError, OSError, DatabaseError) as exc:
            logger.warning("rate limit for %s not applied: cache unavailable (%s)", rule.group, exc)
            return None
        if usage is None or not usage["should_limit"]:
            return None
        # The window's last second still belongs to it: the next one starts a second later.
        retry_after = max(1, int(usage["time_left"]) + 1)
        if usage["count"] == usage["limit"] + 1:
            # Once per address and window, not once per refused request of a flood.
            logger.warning(
                "rate limit hit on %s by %s (limit %s); refusing for %s s",
                rule.group,
                client_address(request),
                usage["limit"],
                retry_after,
            )
        return _refusal(rule, retry_after)
