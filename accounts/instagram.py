"""The only code that speaks HTTP to Instagram (docs/instagram.md).

It knows URLs, parameters and response shapes, nothing about our models. Every
call goes through one ``requests.Session`` per process with a connect and a read
timeout and a descriptive User-Agent, both read from settings on each call.
Failures become the exception family below (section 7 of docs/instagram.md),
decided on Instagram's ``code``/``error_subcode`` rather than the HTTP status.
No message, repr, args or log line carries a token, a secret, an OAuth code or
an ``access_token=`` URL: messages are built without URLs, the values a call sent
are scrubbed from anything Instagram echoes back, and ``redact()`` runs last.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urljoin, urlsplit

import requests
import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from tokenagent.redaction import REDACTED, redact

logger = logging.getLogger(__name__)

REQUIRED_SCOPE = "instagram_business_basic"
PROFILE_FIELDS = "user_id,username,name,account_type,profile_picture_url,media_count"


# --- Errors ---------------------------------------------------------------------------


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove the exact values a call sent (token, secret, code) and the app secret,
    then redact()."""
    for secret in (*secrets, str(getattr(settings, "INSTAGRAM_APP_SECRET", "") or "")):
        # Very short values would garble ordinary words; real tokens, secrets and
        # codes are long, and redact() still catches the usual shapes.
        if secret and len(secret) >= 6:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, REDACTED)
    return redact(text)


class InstagramError(Exception):
    """Base of every failure talking to Instagram. Messages are redacted."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str = "",
        status: int | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.message = _scrub(str(message), secrets)
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.status = status
        super().__init__(self.message)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code}, "
            f"subcode={self.subcode}, status={self.status})"
        )

    def describe(self) -> str:
        """A line a person can read (dashboard, alerts)."""
        parts = [self.message]
        if self.code is not None:
            parts.append(f"(code {self.code}" + (f"/{self.subcode})" if self.subcode else ")"))
        return " ".join(parts)


class InstagramAuthError(InstagramError):
    """Code 190/102: the token is invalid, revoked or expired. Only a new login helps."""


class InstagramPermissionError(InstagramError):
    """Codes 10 and 200-299: a permission is missing or was revoked (re-consent)."""


class InstagramConfigurationError(InstagramError):
    """Codes 3 and 100, bad app id/secret, rejected code, unusable base URL: a bug or
    a setup problem. Never retried."""


class InstagramTransientError(InstagramError):
    """Network failure, timeout, HTTP 5xx, codes 1/2 or ``is_transient``: retry with backoff."""

    retryable = True


class InstagramRateLimitError(InstagramTransientError):
    """Codes 4, 17, 32, 613, 80002, 341, 368 (and a bare HTTP 429). ``retry_after`` is
    a hint in seconds, from ``estimated_time_to_regain_access`` or ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InstagramMalformedResponseError(InstagramError):
    """An answer that is not the JSON shape the API documents (e.g. a proxy's HTML
    page, a missing field). Possibly a passing glitch, so callers may retry."""

    retryable = True


class InstagramTokenTooYoungError(InstagramError):
    """Refresh refused because the token is younger than 24 hours (not retried)."""


class InstagramCodeExchangeError(InstagramConfigurationError):
    """The authorization code was rejected (expired, reused, wrong redirect_uri,
    wrong app id/secret). Never retry a rejected code: restart the login."""


# --- Results --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShortLivedToken:
    access_token: str = field(repr=False)
    user_id: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class TokenGrant:
    """A long-lived token and when it expires (absolute, aware UTC)."""

    access_token: str = field(repr=False)
    expires_at: datetime
    token_type: str = "bearer"  # noqa: S105 (a token kind, not a secret)
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    user_id: str
    id: str
    username: str
    name: str = ""
    account_type: str = ""
    profile_picture_url: str = ""
    media_count: int | None = None


# --- Plumbing --------------------------------------------------------------------------


# Connections kept per host: a threads-pool worker refreshes many accounts at once
# (bench/refresh_fanout runs 64 threads); requests' default pool of 10 would churn.
POOL_MAXSIZE = 64


@lru_cache(maxsize=1)
def _session_for(pid: int) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _session() -> requests.Session:
    """One pooled session per process: a forked worker must not reuse its parent's
    sockets. Headers and timeouts are not baked in; they are read per request."""
    return _session_for(os.getpid())


def _headers() -> dict[str, str]:
    return {"User-Agent": settings.INSTAGRAM_USER_AGENT, "Accept": "application/json"}


def _timeout() -> tuple[float, float]:
    return (settings.INSTAGRAM_CONNECT_TIMEOUT, settings.INSTAGRAM_READ_TIMEOUT)


def _app_credentials() -> tuple[str, str]:
    app_id, secret = settings.INSTAGRAM_APP_ID, settings.INSTAGRAM_APP_SECRET
    if not app_id or not secret:
        raise ImproperlyConfigured("INSTAGRAM_APP_ID and INSTAGRAM_APP_SECRET must be set.")
    return app_id, secret


def _graph(path: str, *, versioned: bool) -> str:
    base = settings.INSTAGRAM_GRAPH_URL.rstrip("/")
    if versioned:
        return f"{base}/{settings.INSTAGRAM_GRAPH_VERSION}/{path.lstrip('/')}"
    return f"{base}/{path.lstrip('/')}"


_SENSITIVE_KEYS = frozenset({"access_token", "client_secret", "code"})


def _sensitive_values(url: str, *dicts: dict[str, Any] | None) -> tuple[str, ...]:
    """The token/secret/code values a request carries, in its URL or its fields."""
    values: list[str] = []
    try:
        query = urlsplit(url).query
    except ValueError:
        query = ""
    values += [v for k, v in parse_qsl(query) if k in _SENSITIVE_KEYS]
    for d in dicts:
        values += [str(v) for k, v in (d or {}).items() if k in _SENSITIVE_KEYS and v]
    return tuple(values)


def _where(url: str) -> str:
    """Host and path of a URL, never its query (which may hold a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an unparsable URL"
    return f"{parts.netloc}{parts.path}" if parts.netloc else "a URL without a host"


@dataclass(frozen=True)
class _Reply:
    resp: requests.Response
    body: Any
    secrets: tuple[str, ...]


_BAD_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


def _request(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> _Reply:
    secrets = _sensitive_values(url, params, data)
    where = _where(url)
    started = time.monotonic()
    failure: InstagramError | None = None
    try:
        resp = _session().request(
            method, url, params=params, data=data, headers=_headers(), timeout=_timeout()
        )
    except requests.Timeout as exc:
        failure = InstagramTransientError(
            f"Instagram did not answer in time ({type(exc).__name__} calling {where})"
        )
    except _BAD_URL_ERRORS as exc:
        failure = InstagramConfigurationError(
            f"Cannot call Instagram at {where} ({type(exc).__name__}); "
            "check INSTAGRAM_API_URL / INSTAGRAM_GRAPH_URL and INSTAGRAM_USER_AGENT"
        )
    except requests.RequestException as exc:
        # requests' own message embeds the full URL (access_token=, client_secret=):
        # keep only the exception's class name.
        failure = InstagramTransientError(
            f"Could not reach Instagram ({type(exc).__name__} calling {where})"
        )
    if failure is not None:
        # Raised outside the except block, so no __context__ drags the raw exception
        # (and the URL in its message) into tracebacks or error reporters.
        logger.warning("Instagram %s %s failed: %s", method, where, failure.message)
        raise failure
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.debug(
        "Instagram %s %s -> HTTP %s (%.0f ms)", method, where, resp.status_code, elapsed_ms
    )
    return _Reply(resp=resp, body=_json(resp), secrets=secrets)


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _ok(status: int) -> bool:
    return 200 <= status < 300


_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80002, 341, 368})
_AUTH_CODES = frozenset({190, 102})
_TRANSIENT_CODES = frozenset({1, 2})
_CONFIG_CODES = frozenset({3, 100})


def _classify(*, code: int | None, is_transient: bool, status: int) -> type[InstagramError]:
    """Section 7's table. The code decides; the HTTP status only when the code says
    nothing we know."""
    if code in _AUTH_CODES:
        return InstagramAuthError
    if code in _RATE_LIMIT_CODES:
        return InstagramRateLimitError
    if code in _TRANSIENT_CODES or is_transient:
        return InstagramTransientError
    if code == 10 or (code is not None and 200 <= code <= 299):
        return InstagramPermissionError
    if code in _CONFIG_CODES:
        return InstagramConfigurationError
    if status == 429:
        return InstagramRateLimitError
    if status >= 500:
        return InstagramTransientError
    return InstagramError


def _retry_after_hint(resp: requests.Response) -> float | None:
    """Seconds to wait: the largest ``estimated_time_to_regain_access`` (minutes) in
    the usage headers (section 8), or a numeric ``Retry-After`` header."""
    waits: list[float] = []
    for header in ("X-Business-Use-Case-Usage", "X-App-Usage"):
        raw = resp.headers.get(header)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        entries = list(data.values()) if isinstance(data, dict) else []
        if isinstance(data, dict):
            entries.append(data)  # X-App-Usage is one flat object
        for entry in entries:
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, dict):
                    minutes = _int(item.get("estimated_time_to_regain_access"))
                    if minutes and minutes > 0:
                        waits.append(minutes * 60.0)
    seconds = _int((resp.headers.get("Retry-After") or "").strip())
    if seconds and seconds > 0:
        waits.append(float(seconds))
    return max(waits) if waits else None


def _error(cls: type[InstagramError], message: str, reply: _Reply, **kw: Any) -> InstagramError:
    kw.setdefault("status", reply.resp.status_code)
    if issubclass(cls, InstagramRateLimitError):
        kw["retry_after"] = _retry_after_hint(reply.resp)
    return cls(message, secrets=reply.secrets, **kw)


def _graph_error(reply: _Reply) -> InstagramError:
    """Map a Graph ``{"error": {...}}`` answer (or its absence) onto the family."""
    status, body = reply.resp.status_code, reply.body
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        cls = _classify(code=None, is_transient=False, status=status)
        if cls is InstagramError:
            return _error(
                InstagramMalformedResponseError,
                f"Instagram answered HTTP {status} without a readable error",
                reply,
            )
        return _error(cls, f"Instagram answered HTTP {status}", reply)
    code, subcode = _int(err.get("code")), _int(err.get("error_subcode"))
    is_transient = err.get("is_transient") in (True, "true")
    cls = _classify(code=code, is_transient=is_transient, status=status)
    message = str(err.get("message") or err.get("error_user_msg") or "Instagram error")
    error = _error(
        cls, message, reply, code=code, subcode=subcode, error_type=str(err.get("type") or "")
    )
    logger.info("Instagram answered HTTP %s: %s", status, error.describe())
    return error


def _graph_get(url: str, params: dict[str, Any]) -> dict[str, Any]:
    reply = _request("GET", url, params=params)
    body = reply.body
    if not _ok(reply.resp.status_code) or (
        isinstance(body, dict) and isinstance(body.get("error"), dict)
    ):
        raise _graph_error(reply)
    if not isinstance(body, dict):
        raise _error(
            InstagramMalformedResponseError,
            f"Instagram answered HTTP {reply.resp.status_code} with a body that is not "
            "a JSON object",
            reply,
        )
    return body


def _unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """Documented shapes wrap the object in ``data: [...]``; observed ones are flat."""
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict) and "paging" not in body:
        return data[0]
    return body


def _expires_at(expires_in: Any, now: datetime | None) -> datetime:
    seconds = _int(expires_in)
    if seconds is None or seconds <= 0:
        raise InstagramMalformedResponseError("Instagram's token answer has no valid expires_in")
    try:
        return (now or timezone.now()) + timedelta(seconds=seconds)
    except OverflowError:
        raise InstagramMalformedResponseError(
            "Instagram's token answer has an impossible expires_in"
        ) from None


def _token_string(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise InstagramMalformedResponseError("Instagram's token answer has no access_token")
    return token.strip()


def _id_string(value: Any) -> str | None:
    """An Instagram id as a string. Numbers beyond 2**53 arrive as JSON integers,
    which Python parses exactly; a float means digits were already lost."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _permissions(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = raw.replace(" ", ",").split(",")
    elif isinstance(raw, list):
        items = [str(x) for x in raw]
    else:
        items = []
    return tuple(p.strip() for p in items if p.strip())


def _token_grant(body: dict[str, Any], *, now: datetime | None) -> TokenGrant:
    """The answer of the long-lived exchange and of the refresh (sections 3 and 4),
    flat or ``data``-wrapped, as a TokenGrant."""
    body = _unwrap(body)
    return TokenGrant(
        access_token=_token_string(body),
        expires_at=_expires_at(body.get("expires_in"), now),
        token_type=str(body.get("token_type") or "bearer"),
        permissions=_permissions(body.get("permissions")),
    )


# --- The API ----------------------------------------------------------------------------


def authorize_url(*, redirect_uri: str, state: str, force_authentication: bool = True) -> str:
    """The Instagram authorization window (section 1), on the www host."""
    app_id, _ = _app_credentials()
    scopes = list(settings.INSTAGRAM_SCOPES)
    if REQUIRED_SCOPE not in scopes:
        scopes.insert(0, REQUIRED_SCOPE)
    params = {
        "client_id": app_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": ",".join(scopes),
        "state": state,
        "enable_fb_login": "0",
        "force_authentication": "1" if force_authentication else "0",
    }
    base = settings.INSTAGRAM_AUTHORIZE_URL
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def clean_code(code: str) -> str:
    """Strip the ``#_`` Instagram appends to codes (section 1)."""
    code = code.strip()
    while code.endswith("#_"):
        code = code[:-2]
    return code


def exchange_code(*, code: str, redirect_uri: str) -> ShortLivedToken:
    """Authorization code -> short-lived token (section 2). Accepts the documented
    ``data``-wrapped and the observed flat body; ``user_id`` number or string;
    ``permissions`` string or list. Requires ``instagram_business_basic`` when the
    answer lists permissions (the old shape without the field is accepted; /me is
    the next check).

    Any refusal other than an outage or a rate limit is an
    ``InstagramCodeExchangeError``: the code cannot be retried.
    """
    app_id, secret = _app_credentials()
    url = f"{settings.INSTAGRAM_API_URL.rstrip('/')}/oauth/access_token"
    reply = _request(
        "POST",
        url,
        data={
            "client_id": app_id,
            "client_secret": secret,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code": clean_code(code),
        },
    )
    status, body = reply.resp.status_code, reply.body
    flat_error = isinstance(body, dict) and ("error_type" in body or "error_message" in body)
    graph_error = isinstance(body, dict) and isinstance(body.get("error"), dict)
    if flat_error or graph_error or not _ok(status):
        if flat_error:
            # This endpoint's own flat shape (section 2): {"error_type", "code", "error_message"}.
            message = str(body.get("error_message") or "Code exchange refused")
            code_, subcode, is_transient = _int(body.get("code")), None, False
            error_type = str(body.get("error_type") or "")
        elif graph_error:
            err = body["error"]
            message = str(err.get("message") or "Code exchange refused")
            code_, subcode = _int(err.get("code")), _int(err.get("error_subcode"))
            is_transient = err.get("is_transient") in (True, "true")
            error_type = str(err.get("type") or "")
        else:
            message = f"Code exchange refused with HTTP {status}"
            code_, subcode, is_transient, error_type = None, None, False, ""
        cls = _classify(code=code_, is_transient=is_transient, status=status)
        if not issubclass(cls, InstagramTransientError):
            cls = InstagramCodeExchangeError
        elif not (flat_error or graph_error):
            message = f"Instagram answered HTTP {status}"
        error = _error(cls, message, reply, code=code_, subcode=subcode, error_type=error_type)
        logger.info("Code exchange failed with HTTP %s: %s", status, error.describe())
        raise error
    if not isinstance(body, dict):
        raise _error(
            InstagramMalformedResponseError, "Code exchange answer is not a JSON object", reply
        )
    body = _unwrap(body)
    token = _token_string(body)
    user_id = _id_string(body.get("user_id"))
    if user_id is None:
        raise InstagramMalformedResponseError("Code exchange answer has no usable user_id")
    permissions = _permissions(body.get("permissions"))
    if "permissions" in body and REQUIRED_SCOPE not in permissions:
        raise InstagramPermissionError(
            f"The account did not grant {REQUIRED_SCOPE}, which a feed needs"
        )
    return ShortLivedToken(access_token=token, user_id=user_id, permissions=permissions)


def exchange_for_long_lived(*, short_lived_token: str, now: datetime | None = None) -> TokenGrant:
    """Short-lived -> 60-day token (section 3): GET /access_token, ig_exchange_token.
    ``expires_at`` is ``now`` (default: the time of the answer) + ``expires_in``."""
    _, secret = _app_credentials()
    body = _graph_get(
        _graph("access_token", versioned=False),
        {
            "grant_type": "ig_exchange_token",
            "client_secret": secret,
            "access_token": short_lived_token,
        },
    )
    return _token_grant(body, now=now)


def refresh_long_lived(*, access_token: str, now: datetime | None = None) -> TokenGrant:
    """Refresh a long-lived token (section 4). GET only; the token must be >= 24 h old.
    The answer may carry the same or a new string: always store what comes back."""
    try:
        body = _graph_get(
            _graph("refresh_access_token", versioned=False),
            {"grant_type": "ig_refresh_token", "access_token": access_token},
        )
    except InstagramError as exc:
        if _looks_too_young(exc):
            raise InstagramTokenTooYoungError(
                exc.message,
                code=exc.code,
                subcode=exc.subcode,
                error_type=exc.error_type,
                status=exc.status,
            ) from exc
        raise
    return _token_grant(body, now=now)


_TOO_YOUNG = re.compile(
    r"\b24[\s-]*hours?\b|\btoo young\b|\bnot old enough\b|\byounger than\b", re.IGNORECASE
)


def _looks_too_young(exc: InstagramError) -> bool:
    """What Instagram answers for a token under 24 h is unconfirmed (section 4).
    An error that speaks of the 24 hours is taken as that refusal, whatever its
    code: calling a valid young token dead would stop serving it, which is worse
    than retrying a dead one later. Rate limits ("... in the last 24 hours") are
    left as they are."""
    return not isinstance(exc, InstagramRateLimitError) and bool(_TOO_YOUNG.search(exc.message))


def get_profile(*, access_token: str) -> Profile:
    """``GET /me`` (section 5), flat or ``data``-wrapped. Keyed on ``user_id``, the
    professional account id; ``id`` (app-scoped) is kept when present."""
    body = _unwrap(
        _graph_get(
            _graph("me", versioned=True),
            {"fields": PROFILE_FIELDS, "access_token": access_token},
        )
    )
    user_id = _id_string(body.get("user_id"))
    username = body.get("username")
    if user_id is None or not isinstance(username, str) or not username.strip():
        raise InstagramMalformedResponseError("/me answer has no user_id or username")
    return Profile(
        user_id=user_id,
        id=_id_string(body.get("id")) or "",
        username=username.strip(),
        name=str(body.get("name") or ""),
        account_type=str(body.get("account_type") or ""),
        profile_picture_url=str(body.get("profile_picture_url") or ""),
        media_count=_int(body.get("media_count")),
    )


def _same_origin(url: str, base: str) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(base)
    except ValueError:
        return False
    return (a.scheme.lower(), a.netloc.lower()) == (b.scheme.lower(), b.netloc.lower())


# --- Media (section 6) and the media CDN ------------------------------------------------------

MEDIA_TYPES = frozenset({"IMAGE", "VIDEO", "CAROUSEL_ALBUM"})
CHILD_TYPES = frozenset({"IMAGE", "VIDEO"})
MEDIA_CHILD_FIELDS = "id,media_type,media_url,thumbnail_url"
# What a feed needs; carousel items through field expansion (section 6).
MEDIA_FIELDS = (
    "id,media_type,media_url,thumbnail_url,permalink,caption,timestamp,"
    f"children{{{MEDIA_CHILD_FIELDS}}}"
)
MEDIA_PAGE_LIMIT = 100  # the most asked for per page (the edge's maximum is unconfirmed)
# However the pages are cut, a listing stops after this many: a server handing out
# empty or one-item pages cannot keep a sync paging (and spending rate budget).
MEDIA_MAX_PAGES = 20
MAX_CAPTION = 2200  # Instagram's own caption limit; anything longer is not Instagram's
MAX_CHILDREN = 20  # Instagram allows up to 20 items in a carousel
MAX_URL = 4096
_MEDIA_ID = re.compile(r"[0-9A-Za-z_]{1,64}")
# The media CDN's hosts (scontent*.cdninstagram.com, *.fbcdn.net); the configured
# Graph host is allowed too (the sandbox serves its own "CDN").
DEFAULT_IMAGE_HOSTS = ("cdninstagram.com", "fbcdn.net")
IMAGE_MAX_REDIRECTS = 3
_IMAGE_ACCEPT = "image/jpeg,image/png,image/webp;q=0.9,image/*;q=0.5"


class InstagramImageError(InstagramError):
    """The media CDN did not hand over a usable picture: it refused the URL (403 once
    expired, 404 once deleted), sent something that is not an image, or too much.
    Not worth retrying with the same URL."""


@dataclass(frozen=True)
class MediaChild:
    """One item of a carousel. URLs are the CDN's (short-lived), "" when absent."""

    id: str
    media_type: str  # IMAGE or VIDEO
    media_url: str = ""
    thumbnail_url: str = ""  # VIDEO only


@dataclass(frozen=True)
class Media:
    """One post of ``/me/media``. ``media_url`` is "" when Instagram withholds it
    (flagged or licensed content); ``caption`` is None when absent (section 6)."""

    id: str
    media_type: str  # IMAGE, VIDEO or CAROUSEL_ALBUM
    permalink: str
    timestamp: datetime
    caption: str | None = None
    media_url: str = ""
    thumbnail_url: str = ""
    children: tuple[MediaChild, ...] = ()


@dataclass(frozen=True)
class FetchedImage:
    content: bytes = field(repr=False)
    content_type: str


def _http_url(value: Any) -> str:
    """``value`` if it is an absolute http(s) URL of a sane length, else ""."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return ""
    if any(c.isspace() or ord(c) < 32 for c in value):
        return ""
    return value


def _media_id(value: Any) -> str | None:
    found = _id_string(value)
    return found if found and _MEDIA_ID.fullmatch(found) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _media_child(raw: Any) -> MediaChild | None:
    if not isinstance(raw, dict):
        return None
    media_id, media_type = _media_id(raw.get("id")), raw.get("media_type")
    if media_id is None or media_type not in CHILD_TYPES:
        return None
    return MediaChild(
        id=media_id,
        media_type=media_type,
        media_url=_http_url(raw.get("media_url")),
        thumbnail_url=_http_url(raw.get("thumbnail_url")) if media_type == "VIDEO" else "",
    )


def _media(raw: Any) -> Media | None:
    """One item of a page, or None when it cannot be one of our posts (no id, an
    unknown media type, no readable timestamp)."""
    if not isinstance(raw, dict):
        return None
    media_id, media_type = _media_id(raw.get("id")), raw.get("media_type")
    timestamp = _timestamp(raw.get("timestamp"))
    if media_id is None or media_type not in MEDIA_TYPES or timestamp is None:
        return None
    caption = raw.get("caption")
    children: tuple[MediaChild, ...] = ()
    if media_type == "CAROUSEL_ALBUM":
        edge = raw.get("children")
        items = edge.get("data") if isinstance(edge, dict) else None
        if isinstance(items, list):
            parsed = (_media_child(c) for c in items[:MAX_CHILDREN])
            children = tuple(c for c in parsed if c is not None)
    return Media(
        id=media_id,
        media_type=media_type,
        permalink=_http_url(raw.get("permalink")),
        timestamp=timestamp,
        caption=caption[:MAX_CAPTION] if isinstance(caption, str) else None,
        media_url=_http_url(raw.get("media_url")),
        thumbnail_url=_http_url(raw.get("thumbnail_url")) if media_type == "VIDEO" else "",
        children=children,
    )


def _checked_next(nxt: str) -> str:
    """A ``paging.next`` URL may only lead back to the configured Graph API (it is
    sent with the token): same scheme and host, under the same base path."""
    base = settings.INSTAGRAM_GRAPH_URL
    if not _same_origin(nxt, base) or not _http_url(nxt):
        raise InstagramMalformedResponseError(
            f"paging.next points away from the Graph host ({_where(nxt)})"
        )
    prefix = urlsplit(base).path.rstrip("/") + "/"
    if not urlsplit(nxt).path.startswith(prefix):
        raise InstagramMalformedResponseError(
            f"paging.next points outside the Graph API ({_where(nxt)})"
        )
    return nxt


def media_list(*, access_token: str, limit: int) -> list[Media]:
    """The newest ``limit`` posts of ``/me/media`` (section 6), newest first.

    Reads the pinned Graph version with the fields a feed needs, then follows
    ``paging.next`` (a short page is not the end) until ``limit`` posts, the last
    page, a repeated ``next``, a page bringing nothing new, or ``MEDIA_MAX_PAGES``.
    A ``next`` leading anywhere but the configured Graph API is refused before any
    request (it would carry the token). Items that cannot be posts are skipped;
    pages with items of which none is readable are a malformed answer, so a sync
    never mistakes garbage for an empty feed."""
    if limit < 1:
        return []
    url = _graph("me/media", versioned=True)
    params: dict[str, Any] = {
        "fields": MEDIA_FIELDS,
        "limit": min(limit, MEDIA_PAGE_LIMIT),
        "access_token": access_token,
    }
    found: dict[str, Media] = {}
    followed: set[str] = set()
    offered = 0
    for _ in range(MEDIA_MAX_PAGES):
        body = _graph_get(url, params)
        data = body.get("data")
        if not isinstance(data, list):
            raise InstagramMalformedResponseError("/me/media answer has no data list")
        before = len(found)
        for raw in data:
            offered += 1
            item = _media(raw)
            if item is not None and item.id not in found:
                found[item.id] = item
                if len(found) >= limit:
                    return list(found.values())
        if offered and not found:
            raise InstagramMalformedResponseError("/me/media listed no readable post")
        paging = body.get("paging")
        nxt = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(nxt, str) or not nxt or nxt in followed:
            break
        if data and len(found) == before:
            break  # a page of posts already seen: the server is going round in circles
        followed.add(_checked_next(nxt))
        query = dict(parse_qsl(urlsplit(nxt).query))
        url, params = nxt, {}
        if "access_token" not in query:
            params["access_token"] = access_token
        if "fields" not in query:
            params["fields"] = MEDIA_FIELDS
    return list(found.values())


def _image_host_allowed(host: str) -> bool:
    host = host.lower().rstrip(".")
    graph_host = (urlsplit(settings.INSTAGRAM_GRAPH_URL).hostname or "").lower()
    suffixes = getattr(settings, "FEED_IMAGE_HOSTS", None) or DEFAULT_IMAGE_HOSTS
    return host == graph_host or any(
        host == s.lower().lstrip(".") or host.endswith("." + s.lower().lstrip("."))
        for s in suffixes
    )


def _image_target(url: str) -> str:
    checked = _http_url(url)
    host = urlsplit(checked).hostname if checked else None
    if not host:
        raise InstagramImageError(f"not an http(s) image URL ({_where(url)})")
    if not _image_host_allowed(host):
        raise InstagramImageError(
            f"image host is not Instagram's media CDN ({host}; see FEED_IMAGE_HOSTS)"
        )
    return checked


def fetch_image(url: str, *, max_bytes: int, timeout: float) -> FetchedImage:
    """Download one picture from Instagram's media CDN: the only HTTP to the CDN.

    Only http(s) URLs on the CDN's hosts (or the Graph host), at most
    ``IMAGE_MAX_REDIRECTS`` redirects, each checked the same way. The body is
    streamed and refused past ``max_bytes``; ``timeout`` bounds the whole download,
    not only each read. No token is ever sent, and messages name host and path only.
    Raises InstagramImageError (refused, not an image, too large),
    InstagramRateLimitError (429) or InstagramTransientError (network, timeout, 5xx).
    """
    deadline = time.monotonic() + timeout
    target = _image_target(url)
    headers = {
        "User-Agent": settings.INSTAGRAM_USER_AGENT,
        "Accept": _IMAGE_ACCEPT,
        "Accept-Encoding": "identity",
    }
    for _hop in range(IMAGE_MAX_REDIRECTS + 1):
        where = _where(target)
        left = max(0.1, deadline - time.monotonic())
        failure: InstagramError | None = None
        try:
            resp = _session().get(
                target,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(min(settings.INSTAGRAM_CONNECT_TIMEOUT, left), left),
            )
        except requests.Timeout as exc:
            failure = InstagramTransientError(
                f"the media CDN did not answer in time ({type(exc).__name__} calling {where})"
            )
        except requests.RequestException as exc:
            failure = InstagramTransientError(
                f"could not reach the media CDN ({type(exc).__name__} calling {where})"
            )
        if failure is not None:
            logger.info("image download failed: %s", failure.message)
            raise failure
        with resp:
            if resp.is_redirect:
                target = _image_target(urljoin(target, resp.headers.get("Location", "")))
                continue
            return _image_body(resp, where=where, max_bytes=max_bytes, deadline=deadline)
    raise InstagramImageError(f"too many redirects fetching an image ({_where(url)})")


def _image_body(
    resp: requests.Response, *, where: str, max_bytes: int, deadline: float
) -> FetchedImage:
    status = resp.status_code
    if status == 429:
        seconds = _int((resp.headers.get("Retry-After") or "").strip())
        raise InstagramRateLimitError(
            f"the media CDN is rate limiting (HTTP 429 for {where})",
            status=status,
            retry_after=float(seconds) if seconds and seconds > 0 else None,
        )
    if status >= 500:
        raise InstagramTransientError(
            f"the media CDN answered HTTP {status} for {where}", status=status
        )
    if not _ok(status):
        raise InstagramImageError(
            f"the media CDN refused {where} with HTTP {status} (an expired or deleted URL?)",
            status=status,
        )
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise InstagramImageError(
            f"the media CDN sent {content_type or 'no content type'}, not an image, for {where}",
            status=status,
        )
    declared = _int(resp.headers.get("Content-Length"))
    if declared is not None and declared > max_bytes:
        raise InstagramImageError(
            f"image of {declared} bytes exceeds the {max_bytes}-byte limit ({where})", status=status
        )
    chunks: list[bytes] = []
    size = 0
    failure: InstagramError | None = None
    try:
        while True:
            # read1: whatever one read brings, so a server dripping bytes cannot keep
            # the loop from checking the deadline (read() would wait for the amount).
            chunk = resp.raw.read1(64 * 1024, decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                failure = InstagramImageError(
                    f"image exceeds the {max_bytes}-byte limit ({where})", status=status
                )
                break
            if time.monotonic() > deadline:
                failure = InstagramTransientError(f"image download took too long ({where})")
                break
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        # A read timeout or a dropped connection midway (urllib3 raises its own errors
        # when the raw stream is read directly).
        failure = InstagramTransientError(
            f"image download broke off ({type(exc).__name__} reading {where})"
        )
    if failure is not None:
        raise failure
    return FetchedImage(content=b"".join(chunks), content_type=content_type)
