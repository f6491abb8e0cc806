"""Reads for the public token endpoints (``/token/<account>.json`` etc.).

The hot path is :func:`served_token`: one cache get, no database query. An entry
is a small dict built from the database on a miss (:func:`build_entry`) and
dropped by ``token_cache.invalidate`` when the token, status or slug changes.
It holds the token still encrypted (decrypted per response with
:func:`token_value`), so the cache, like the database, never holds it in clear.

Also here: what the JavaScript variant may emit (identifier validation and the
JSON string literal), the ``ETag`` and the ``Cache-Control`` lifetime.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.core import checks

from accounts import cors, crypto, token_cache
from accounts.models import AccessToken, InstagramAccount

# Bump when the entry layout or a body format changes: old entries become misses
# and every ETag changes, so no client keeps a body in the old format.
FORMAT = 1

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
UNKNOWN_TTL = 60
MAX_SLUG_LENGTH = InstagramAccount._meta.get_field("slug").max_length

# The published Instafeed.js the snippets and the preview page load from a public
# CDN; the hash is of node_modules/instafeed.js/dist/instafeed.min.js (npm 2.1.0),
# which the CDN serves byte for byte.
INSTAFEED_VERSION = "2.1.0"
INSTAFEED_CDN_URL = (
    f"https://cdn.jsdelivr.net/npm/instafeed.js@{INSTAFEED_VERSION}/dist/instafeed.min.js"
)
INSTAFEED_INTEGRITY = "sha384-yWT9fA1lUQIwm3PVfaBFR9GXMNR8fmWgIgMMoJiBtYiNLgRqZrXIblhTN6/PE0XJ"


# --- Entries ----------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_scheduled_refresh(*, account: InstagramAccount, token: AccessToken) -> datetime:
    """When the refresher will next replace this token (the refresh engine's own
    schedule: one interval after the last refresh or issue, no later than the
    safety window before expiry, never before the token is 24 h old)."""
    from accounts.services.refresh import token_next_refresh_at

    return token_next_refresh_at(token=token, account=account)


def _fingerprint(*parts: object) -> str:
    text = "|".join(str(p) for p in (FORMAT, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _error_entry(state: str, *, slug: str | None, account: InstagramAccount | None) -> dict:
    return {
        "v": FORMAT,
        "state": state,
        "slug": account.slug if account else slug,
        "account_id": account.pk if account else None,
        "username": account.username if account else "",
        "detail": _DETAILS[state],
        "origins": account.allowed_domains if account else "",
        "fp": _fingerprint(state, account.pk if account else slug),
    }


def _entry_for(account: InstagramAccount, *, now: datetime) -> dict:
    if account.status == InstagramAccount.Status.DISCONNECTED:
        return _error_entry(DISCONNECTED, slug=None, account=account)
    if account.status == InstagramAccount.Status.NEEDS_RECONNECT:
        return _error_entry(NEEDS_RECONNECT, slug=None, account=account)
    try:
        token = account.access_token
    except AccessToken.DoesNotExist:
        return _error_entry(NO_TOKEN, slug=None, account=account)
    if token.expires_at <= now:
        return _error_entry(TOKEN_EXPIRED, slug=None, account=account)
    try:
        crypto.decrypt(token.ciphertext)
    except crypto.InvalidToken:
        return _error_entry(TOKEN_UNREADABLE, slug=None, account=account)
    refresh_at = next_scheduled_refresh(account=account, token=token)
    return {
        "v": FORMAT,
        "state": OK,
        "slug": account.slug,
        "account_id": account.pk,
        "username": account.username,
        "ct": token.ciphertext,
        "expires_at": _iso(token.expires_at),
        "expires_ts": token.expires_at.timestamp(),
        "refresh_ts": refresh_at.timestamp(),
        "origins": account.allowed_domains,
        "fp": _fingerprint(
            account.pk,
            account.slug,
            account.username,
            token.version,
            token.expires_at.isoformat(),
            hashlib.sha256(token.ciphertext.encode()).hexdigest(),
        ),
    }


def with_state(entry: dict, state: str) -> dict:
    """A copy of ``entry`` that reports ``state`` (e.g. a token found unreadable late)."""
    return {**entry, "state": state, "detail": _DETAILS[state]}


def build_entry(slug: str | None, *, now: datetime | None = None) -> dict:
    """Read what ``slug`` (None: the default account) serves from the database."""
    now = now or datetime.now(UTC)
    accounts = InstagramAccount.objects.select_related("access_token")
    if slug is None:
        # The owner's pick, else the first connected account (lowest id), whatever
        # its status: the default never silently jumps to another account.
        account = accounts.order_by("-is_default", "pk").first()
        if account is None:
            return _error_entry(NO_DEFAULT_ACCOUNT, slug=None, account=None)
    else:
        account = accounts.filter(slug=slug).first()
        if account is None:
            return _error_entry(UNKNOWN_ACCOUNT, slug=slug, account=None)
    return _entry_for(account, now=now)


def _ttl(entry: dict, now: float) -> int:
    if entry["state"] == OK:
        return max(1, min(token_cache.ENTRY_TTL, int(entry["expires_ts"] - now)))
    return UNKNOWN_TTL if entry["state"] in NOT_FOUND_STATES else ERROR_TTL


def served_token(slug: str | None) -> dict:
    """What ``/token/<slug>.*`` (or ``/token.*`` for None) serves now.

    Cache hit: no database query. Miss: build, store, then build once more and
    drop the stored copy if the two differ: a writer that committed while we were
    reading may have invalidated before our store, and this second read sees its
    commit (its own on-commit invalidation covers anything later)."""
    if slug is not None and len(slug) > MAX_SLUG_LENGTH:
        return _error_entry(UNKNOWN_ACCOUNT, slug=slug[:MAX_SLUG_LENGTH], account=None)
    key = token_cache.DEFAULT_KEY if slug is None else token_cache.key_for(slug)
    now = time.time()
    entry = token_cache.get(key)
    if entry is not None and entry.get("v") == FORMAT:
        if entry["state"] != OK or entry["expires_ts"] > now:
            return entry
    entry = build_entry(slug)
    token_cache.store(key, entry, timeout=_ttl(entry, now), account_id=entry["account_id"])
    again = build_entry(slug)
    if again["fp"] != entry["fp"]:
        token_cache.delete(key)
    return again


def token_value(entry: dict) -> str:
    """The token in clear, for one response. Raises ``crypto.InvalidToken``."""
    return _decrypt(entry["ct"], settings.TOKEN_ENCRYPTION_KEY, settings.SECRET_KEY)


@lru_cache(maxsize=128)
def _decrypt(ciphertext: str, keys: str, secret_key: str) -> str:
    # Memoized per ciphertext (unique per token write) and key set: a new token or
    # a key change is a new entry, so this never serves anything stale.
    return crypto.decrypt(ciphertext)


def allow_list(entry: dict) -> cors.AllowList | cors.Intersection:
    """``ALLOWED_DOMAINS`` narrowed by the account's own list, if it has one."""
    return cors.global_allow_list().narrowed_by(_account_allow_list(entry.get("origins") or ""))


@lru_cache(maxsize=256)
def _account_allow_list(value: str) -> cors.AllowList:
    return cors.parse(value)


def max_age(entry: dict, *, now: float | None = None) -> int:
    """Seconds a client may cache the token: until the next scheduled refresh or
    expiry, whichever is first, capped by ``TOKEN_CACHE_MAX_AGE``; never negative."""
    now = time.time() if now is None else now
    remaining = min(entry["refresh_ts"], entry["expires_ts"]) - now
    return max(0, min(settings.TOKEN_CACHE_MAX_AGE, int(remaining)))


def etag(entry: dict, variant: str) -> str:
    """A strong ETag: the entry's fingerprint plus the variant (incl. the JS name)."""
    return f'"{entry["fp"]}-{variant}"'


# --- Bodies -----------------------------------------------------------------------


def json_body(entry: dict, token: str) -> str:
    """instatokend and Token Agent clients read ``token``; Instant-tokens clients ``Token``."""
    return json.dumps(
        {
            "token": token,
            "account": entry["slug"],
            "username": entry["username"],
            "expires_at": entry["expires_at"],
            "Token": token,
        }
    )


def error_body(entry: dict) -> str:
    return json.dumps(
        {"error": entry["state"], "detail": entry["detail"], "account": entry["slug"]}
    )


# --- JavaScript -------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
MAX_IDENTIFIER_LENGTH = 64
# ECMAScript reserved words (incl. strict mode and the literals), names that
# cannot be assigned, and window properties whose assignment would navigate or
# break the page.
_RESERVED = frozenset(
    """
    await break case catch class const continue debugger default delete do else enum
    export extends false finally for function if import in instanceof new null return
    super switch this throw true try typeof var void while with yield
    implements interface let package private protected public static
    arguments eval undefined NaN Infinity
    abstract boolean byte char double final float goto int long native short
    synchronized throws transient volatile
    window self top parent frames opener location document globalThis name length
    closed status origin history navigator console localStorage sessionStorage
    __proto__ constructor prototype hasOwnProperty isPrototypeOf propertyIsEnumerable
    toLocaleString toString valueOf __defineGetter__ __defineSetter__
    __lookupGetter__ __lookupSetter__
    """.split()
)


def js_identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be the global the snippet sets, or None if it can.

    The message never contains ``name`` itself (it is untrusted input)."""
    if not name:
        return "the name is empty"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        return f"the name is longer than {MAX_IDENTIFIER_LENGTH} characters"
    if not _IDENTIFIER.fullmatch(name):
        return (
            "the name must be a JavaScript identifier: ASCII letters, digits, _ and $, "
            "not starting with a digit"
        )
    if name in _RESERVED:
        return "the name is a reserved word or a built-in global"
    return None


_JS_ESCAPES = {
    ord("<"): "\\u003C",
    ord(">"): "\\u003E",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def js_string(value: str) -> str:
    """``value`` as a JSON string literal that is safe inside a script, an HTML
    ``<script>`` element and any JavaScript parser (no ``</script>``, no line
    separators)."""
    return json.dumps(value).translate(_JS_ESCAPES)


def js_assign(name: str, token: str) -> str:
    # A property assignment, not const/let: including the snippet twice never throws.
    return f'window["{name}"] = {js_string(token)};\n'


def js_unusable(name: str, message: str) -> str:
    """Sets the global to null and tells the developer console why."""
    return f'window["{name}"] = null;\nconsole.error({js_string("tokenagent: " + message)});\n'


def js_refusal(message: str) -> str:
    """A refusal body: harmless JavaScript that only logs why."""
    return f"console.error({js_string('tokenagent: ' + message)});\n"


@lru_cache(maxsize=4)
def default_js_name_problem(name: str) -> str | None:
    return js_identifier_problem(name)


# --- Settings check (registered when this module is imported; the app's ready() does) ---


@checks.register(checks.Tags.security)
def check_serving_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
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
    problem = js_identifier_problem(settings.JS_CONSTANT_NAME)
    if problem:
        messages.append(
            checks.Error(
                f"JS_CONSTANT_NAME cannot be used: {problem}.",
                hint="Use a plain JavaScript identifier such as InstagramToken.",
                id="tokenagent.E101",
            )
        )
    return messages
