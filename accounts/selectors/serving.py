"""Reads for the public token URLs: what ``/token/<account>`` (or ``/token`` for the
default account) serves now, as one :class:`ServedToken`. A feed-only account is
served as an unknown one (as no default account when it is the default).

The hot path is :func:`served_token`: one cache get, no database query. An entry is
built from the database on a miss and dropped by ``accounts.token_cache`` when the
token, status or slug changes. It holds the token still encrypted (decrypted per
response by :meth:`ServedToken.token`), so the cache, like the database, never holds
it in clear. An unknown name is answered from the cached set of known names and
stores nothing: public requests never create unbounded cache entries.

How a response is shaped from an entry (CORS, the ``.js`` gate, caching headers,
bodies) is ``accounts.serving_policy``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import TypeVar

from django.conf import settings
from django.db.models import QuerySet

from accounts import cors, crypto, token_cache
from accounts.models import AccessToken, InstagramAccount
from accounts.refresh_policy import token_next_refresh_at

# Bump when the entry layout or a body format changes: old entries become misses
# and every ETag changes, so no client keeps a body in the old format.
FORMAT = 2

OK = "ok"
UNKNOWN_ACCOUNT = "unknown_account"
NO_DEFAULT_ACCOUNT = "no_default_account"
NEEDS_RECONNECT = "needs_reconnect"
DISCONNECTED = "disconnected"
# Error codes, not secrets.
NO_TOKEN = "no_token"  # noqa: S105
TOKEN_EXPIRED = "token_expired"  # noqa: S105
TOKEN_UNREADABLE = "token_unreadable"  # noqa: S105
NOT_FOUND_STATES = frozenset({UNKNOWN_ACCOUNT, NO_DEFAULT_ACCOUNT})

_DETAILS = {
    UNKNOWN_ACCOUNT: "No account with this name is connected to the agent.",
    NO_DEFAULT_ACCOUNT: "No Instagram account is connected to the agent yet.",
    NEEDS_RECONNECT: (
        "Instagram no longer accepts this account's token; "
        "the owner must reconnect the account in the agent."
    ),
    DISCONNECTED: "This account was disconnected from the agent; the owner must connect it again.",
    NO_TOKEN: "This account has no token yet; the owner must connect it in the agent.",
    TOKEN_EXPIRED: "The stored token has expired; the owner must reconnect the account.",
    TOKEN_UNREADABLE: (
        "The stored token cannot be decrypted (was TOKEN_ENCRYPTION_KEY changed?); "
        "the owner must restore the key or reconnect the account."
    ),
}

# How long entries live in the cache, in seconds (invalidation normally ends them first).
ERROR_TTL = 300
NO_DEFAULT_TTL = 60
MAX_SLUG_LENGTH: int = InstagramAccount._meta.get_field("slug").max_length or 64
E = TypeVar("E", bound="ServedEntry")


@dataclass(frozen=True, slots=True)
class ServedEntry:
    """What the public URLs of one account name serve, its token or its feed
    (``accounts.selectors.served_feed``): the state (``OK`` or an error code), whose
    it is and which sites may read it."""

    state: str
    slug: str | None
    account_id: int | None
    username: str
    # The account's own ALLOWED_DOMAINS-style list ("" = none).
    origins: str
    fingerprint: str

    @property
    def ok(self) -> bool:
        return self.state == OK

    @property
    def not_found(self) -> bool:
        return self.state in NOT_FOUND_STATES

    def allow_list(self) -> cors.AllowList | cors.Intersection:
        return allow_list_for(self.origins)

    def etag(self, variant: str) -> str:
        """A strong ETag: the entry's fingerprint plus the variant (incl. the JS name)."""
        return f'"{self.fingerprint}-{variant}"'


@dataclass(frozen=True, slots=True)
class ServedToken(ServedEntry):
    """What one token URL serves: when OK, the encrypted token with its expiry and
    next scheduled refresh (epoch seconds)."""

    ciphertext: str = ""
    expires_at: str = ""  # ISO 8601 UTC, for the JSON body
    expires_ts: float = 0.0
    refresh_ts: float = 0.0
    format: int = FORMAT

    @property
    def detail(self) -> str:
        return _DETAILS[self.state]

    def with_state(self, state: str) -> ServedToken:
        """This entry reporting ``state`` (e.g. a token found unreadable late)."""
        return replace(self, state=state)

    def token(self) -> str:
        """The token in clear, for one response. Raises ``crypto.InvalidToken``."""
        return _decrypt(self.ciphertext, settings.TOKEN_ENCRYPTION_KEY, settings.SECRET_KEY)

    def max_age(self, *, now: float | None = None) -> int:
        """Seconds a client may cache the token: until the next scheduled refresh or
        expiry, whichever is first, capped by ``TOKEN_CACHE_MAX_AGE``; never negative."""
        now = time.time() if now is None else now
        remaining = min(self.refresh_ts, self.expires_ts) - now
        return max(0, min(settings.TOKEN_CACHE_MAX_AGE, int(remaining)))


@lru_cache(maxsize=128)
def _decrypt(ciphertext: str, keys: str, secret_key: str) -> str:
    # Memoized per ciphertext (unique per token write) and key set: a new token or
    # a key change is a new entry, so this never serves anything stale.
    return crypto.decrypt(ciphertext)


@lru_cache(maxsize=256)
def _account_allow_list(value: str) -> cors.AllowList:
    return cors.parse(value)


def allow_list_for(origins: str) -> cors.AllowList | cors.Intersection:
    """``ALLOWED_DOMAINS`` narrowed by an account's own list (``origins``), if any."""
    return cors.global_allow_list().narrowed_by(_account_allow_list(origins))


# --- Entries ----------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_scheduled_refresh(*, account: InstagramAccount, token: AccessToken) -> datetime:
    """When the refresher will next replace this token (the refresh engine's own
    schedule: one interval after the last refresh or issue, no later than the
    safety window before expiry, never before the token is 24 h old)."""
    return token_next_refresh_at(token=token, account=account)


def fingerprint(*parts: object) -> str:
    """A short hash of what an entry serves (its format first, so that a new format
    changes every ETag)."""
    text = "|".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _fingerprint(*parts: object) -> str:
    return fingerprint(FORMAT, *parts)


def error_entry(
    cls: type[E], state: str, *, slug: str | None, account: InstagramAccount | None, format: int
) -> E:
    """An entry of ``cls`` that reports ``state`` for ``account`` (or, unknown, ``slug``)."""
    return cls(
        state=state,
        slug=account.slug if account else slug,
        account_id=account.pk if account else None,
        username=account.username if account else "",
        origins=account.allowed_domains if account else "",
        fingerprint=fingerprint(format, state, account.pk if account else slug),
    )


def _error(state: str, *, slug: str | None, account: InstagramAccount | None) -> ServedToken:
    return error_entry(ServedToken, state, slug=slug, account=account, format=FORMAT)


def _entry_for(account: InstagramAccount, *, now: datetime) -> ServedToken:
    if account.status == InstagramAccount.Status.DISCONNECTED:
        return _error(DISCONNECTED, slug=None, account=account)
    if account.status == InstagramAccount.Status.NEEDS_RECONNECT:
        return _error(NEEDS_RECONNECT, slug=None, account=account)
    try:
        token = account.access_token
    except AccessToken.DoesNotExist:
        return _error(NO_TOKEN, slug=None, account=account)
    if token.expires_at <= now:
        return _error(TOKEN_EXPIRED, slug=None, account=account)
    try:
        crypto.decrypt(token.ciphertext)
    except crypto.InvalidToken:
        return _error(TOKEN_UNREADABLE, slug=None, account=account)
    refresh_at = next_scheduled_refresh(account=account, token=token)
    return ServedToken(
        state=OK,
        slug=account.slug,
        account_id=account.pk,
        username=account.username,
        origins=account.allowed_domains,
        fingerprint=_fingerprint(
            account.pk,
            account.slug,
            account.username,
            token.version,
            token.expires_at.isoformat(),
            hashlib.sha256(token.ciphertext.encode()).hexdigest(),
        ),
        ciphertext=token.ciphertext,
        expires_at=_iso(token.expires_at),
        expires_ts=token.expires_at.timestamp(),
        refresh_ts=refresh_at.timestamp(),
    )


def account_served_as(
    slug: str | None, accounts: QuerySet[InstagramAccount]
) -> InstagramAccount | None:
    """The account of ``accounts`` that ``slug`` names; for None the default one:
    the owner's pick, else the first connected account (lowest id), whatever its
    status (the default never silently jumps to another account)."""
    if slug is None:
        return accounts.order_by("-is_default", "pk").first()
    return accounts.filter(slug=slug).first()


def build_entry(slug: str | None, *, now: datetime | None = None) -> ServedToken:
    """Read what ``slug`` (None: the default account) serves from the database."""
    now = now or datetime.now(UTC)
    account = account_served_as(slug, InstagramAccount.objects.select_related("access_token"))
    # A feed-only account's token URLs answer exactly as if it did not exist.
    if account is None or account.feed_only:
        state = NO_DEFAULT_ACCOUNT if slug is None else UNKNOWN_ACCOUNT
        return _error(state, slug=slug, account=None)
    return _entry_for(account, now=now)


def _ttl(entry: ServedToken, now: float) -> int:
    if entry.ok:
        return max(1, min(token_cache.ENTRY_TTL, int(entry.expires_ts - now)))
    return NO_DEFAULT_TTL if entry.state == NO_DEFAULT_ACCOUNT else ERROR_TTL


def known_slugs() -> frozenset[str]:
    """Every account's slug, whatever its status (one cached set, one key)."""
    cached = token_cache.get(token_cache.SLUGS_KEY)
    if isinstance(cached, frozenset):
        return cached
    return token_cache.fill(
        token_cache.SLUGS_KEY,
        lambda: frozenset(InstagramAccount.objects.values_list("slug", flat=True)),
        timeout=lambda _: token_cache.ENTRY_TTL,
    )


def cached_token(slug: str | None, *, now: float | None = None) -> ServedToken | None:
    """What ``/token/<slug>.*`` (or ``/token.*`` for None) serves now, as far as the
    cache alone can tell (the process's copy, then the shared cache), or None when
    only the database can (a miss). Never queries the database: the WSGI fast
    path (``accounts.fastpath``) answers from it and hands a miss to Django."""
    if slug is not None and len(slug) > MAX_SLUG_LENGTH:
        return _error(UNKNOWN_ACCOUNT, slug=slug[:MAX_SLUG_LENGTH], account=None)
    key = token_cache.DEFAULT_KEY if slug is None else token_cache.key_for(slug)
    entry = token_cache.get(key)
    if isinstance(entry, ServedToken) and entry.format == FORMAT:
        if not entry.ok or entry.expires_ts > (time.time() if now is None else now):
            return entry
    if slug is not None and token_cache.known_unknown(slug):
        return _error(UNKNOWN_ACCOUNT, slug=slug, account=None)
    return None


def served_token(slug: str | None) -> ServedToken:
    """What ``/token/<slug>.*`` (or ``/token.*`` for None) serves now.

    Cache hit: no database query. An unknown name is answered from
    :func:`known_slugs` and nothing is stored for it."""
    now = time.time()
    entry = cached_token(slug, now=now)
    if entry is not None:
        return entry
    key = token_cache.DEFAULT_KEY if slug is None else token_cache.key_for(slug)
    if slug is not None and slug not in known_slugs():
        return _error(UNKNOWN_ACCOUNT, slug=slug, account=None)
    return token_cache.fill(
        key,
        lambda: build_entry(slug),
        timeout=lambda e: _ttl(e, now),
        account_of=lambda e: e.account_id,
        same=lambda a, b: a.fingerprint == b.fingerprint,
    )
