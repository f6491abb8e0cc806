"""Which websites may load a token: ``ALLOWED_DOMAINS`` and per-account lists.

Accepted forms, separated by commas and/or whitespace, mixed freely:

- Token Agent's form, a bare host name: ``example.com`` means ``https://example.com``
  (https assumed), optionally with a port (``example.com:8443``);
- a full origin: ``https://example.com``, ``http://localhost:8080``;
- a leading wildcard for subdomains: ``*.example.com`` or ``https://*.example.com``
  (``www.example.com`` and ``a.b.example.com``, not ``example.com`` itself).

A bare host does not imply ``www.``: list both when the site answers on both.
Empty means *unrestricted*: any site may load the token (the owner's pages warn).
A per-account list (``InstagramAccount.allowed_domains``) can only narrow the
global one: an origin must be allowed by both lists.

Lists fail closed: an entry that cannot be parsed matches nothing, and a list
whose every entry is broken allows nothing (it never falls back to "anyone").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

_SPLIT = re.compile(r"[\s,]+")
# A DNS name or IPv4 literal (ASCII, after IDNA), with no trailing dot.
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_IPV6 = re.compile(r"^[0-9a-f:.]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDomain(ValueError):
    """An ``ALLOWED_DOMAINS`` entry that is neither a host name nor an origin."""


@dataclass(frozen=True)
class AllowList:
    """A parsed list. ``restricted`` is False only for an empty (unset) list."""

    restricted: bool
    origins: frozenset[str] = frozenset()
    # (scheme, ".example.com", port) for "*.example.com" entries.
    wildcards: tuple[tuple[str, str, int | None], ...] = ()
    invalid: tuple[str, ...] = ()

    def allows(self, origin: str | None) -> bool:
        """Whether a browser ``Origin`` (or an origin derived from a Referer) is listed."""
        if not self.restricted:
            return True
        parsed = _split_origin(origin) if origin else None
        if parsed is None:
            return False
        scheme, host, port = parsed
        if _format(scheme, host, port) in self.origins:
            return True
        return any(
            scheme == w_scheme and host.endswith(suffix) and port == w_port
            for w_scheme, suffix, w_port in self.wildcards
        )

    def narrowed_by(self, other: AllowList) -> AllowList | Intersection:
        """The list that allows what both allow (``other`` is usually per-account)."""
        if not other.restricted:
            return self
        if not self.restricted:
            return other
        return Intersection(self, other)


@dataclass(frozen=True)
class Intersection:
    first: AllowList
    second: AllowList
    restricted: bool = True

    def allows(self, origin: str | None) -> bool:
        return self.first.allows(origin) and self.second.allows(origin)


UNRESTRICTED = AllowList(restricted=False)


def _format(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal, kept as written
        return host
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidDomain("not a valid host name") from exc
    if not _HOST.match(host):
        raise InvalidDomain("not a valid host name")
    return host


def _split_origin(value: str) -> tuple[str, str, int | None] | None:
    """``scheme://host[:port]`` (from an Origin header or any URL) -> parts, or None."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        if not _IPV6.match(host):
            return None
        host = f"[{host}]"
    elif not _HOST.match(host) or parts.username is not None:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return scheme, host, port


def origin_of(url: str | None) -> str | None:
    """The origin (``scheme://host[:port]``) a URL such as a Referer belongs to."""
    parsed = _split_origin(url) if url else None
    return _format(*parsed) if parsed else None


def parse_entry(entry: str) -> tuple[str, str, int | None, bool]:
    """One entry -> (scheme, host or wildcard suffix, port, is_wildcard).

    Raises :class:`InvalidDomain` with a message safe to show to the owner."""
    raw = entry.strip()
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidDomain("only http:// and https:// origins can be listed")
    else:
        scheme, rest = "https", raw
    rest = rest.rstrip("/")
    if any(ch in rest for ch in "/?#@"):
        raise InvalidDomain("list origins or host names only, without a path")
    host, port = rest, None
    if not rest.endswith("]") and rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidDomain("the port must be a number")
        port = int(port_text)
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    wildcard = host.startswith("*.")
    host = _normalize_host(host[2:] if wildcard else host)
    if "*" in host:
        raise InvalidDomain("a wildcard is only allowed as the first label (*.example.com)")
    return scheme, (f".{host}" if wildcard else host), port, wildcard


def parse(value: str | None) -> AllowList:
    """Parse a whole list (the setting or an account's field); never raises."""
    entries = [e for e in _SPLIT.split(value or "") if e]
    if not entries:
        return UNRESTRICTED
    origins: set[str] = set()
    wildcards: list[tuple[str, str, int | None]] = []
    invalid: list[str] = []
    for entry in entries:
        try:
            scheme, host, port, wildcard = parse_entry(entry)
        except InvalidDomain:
            invalid.append(entry)
            continue
        if wildcard:
            wildcards.append((scheme, host, port))
        else:
            origins.add(_format(scheme, host, port))
    if invalid:
        logger.warning("Ignoring %d invalid allowed-domain entr(y/ies)", len(invalid))
    return AllowList(True, frozenset(origins), tuple(wildcards), tuple(invalid))


def validate(value: str) -> list[str]:
    """Problems with a list, one message per bad entry (for forms and system checks)."""
    problems = []
    for entry in (e for e in _SPLIT.split(value or "") if e):
        try:
            parse_entry(entry)
        except InvalidDomain as exc:
            problems.append(f"{entry[:80]!r}: {exc}")
    return problems


@lru_cache(maxsize=8)
def _parse_cached(value: str) -> AllowList:
    return parse(value)


def global_allow_list() -> AllowList:
    """``ALLOWED_DOMAINS`` parsed (memoized per value, so tests can override it)."""
    return _parse_cached(settings.ALLOWED_DOMAINS)


def is_unrestricted() -> bool:
    """True while any website may load the tokens (the owner's pages warn in red)."""
    return not global_allow_list().restricted


# --- Response headers -------------------------------------------------------------

ALLOW_METHODS = "GET, HEAD, OPTIONS"
ALLOW_HEADERS = "Accept, Cache-Control, Content-Type, If-None-Match, X-Requested-With"
PREFLIGHT_MAX_AGE = "86400"


def allow_origin_header(origin: str | None, allow: AllowList | Intersection) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request, or None for none.

    An allowed ``Origin`` is echoed (responses carry ``Vary: Origin``). The opaque
    origin ``null`` (sandboxed frames, file: pages) is never echoed; it gets ``*``
    only while the list is unrestricted."""
    if not origin:
        return None
    normalized = origin_of(origin) if origin != "null" else None
    if normalized is None:  # "null" or garbage: never reflected
        return "*" if not allow.restricted else None
    return normalized if allow.allows(normalized) else None
