"""The only code that speaks HTTP to Instagram (instagram-api.md).

It knows URLs, parameters and response shapes, nothing about our models. Every
call goes through one ``requests.Session`` per process with a connect and a read
timeout and a descriptive User-Agent, both read from settings on each call.
Failures become the exception family below (section 7 of instagram-api.md),
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from tokenagent.redaction import REDACTED, redact

logger = logging.getLogger(__name__)

REQUIRED_SCOPE = "instagram_business_basic"
PROFILE_FIELDS = "user_id,username,name,account_type,profile_picture_url,media_count"
MEDIA_FIELDS = "id,caption,media_type,media_url,permalink,thumbnail_url,timestamp,username"


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


@dataclass(frozen=True)
class MediaPage:
    items: list[dict[str, Any]]
    next_url: str | None = field(default=None, repr=False)


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


def get_media_page(*, access_token: str, limit: int = 25, next_url: str | None = None) -> MediaPage:
    """One page of ``/me/media`` (section 6). Pass ``next_url`` from the previous
    page to continue; ``next_url`` is None on the last page. A ``next_url`` is only
    followed on the configured Graph host, since it is sent with the token."""
    if next_url:
        if not _same_origin(next_url, settings.INSTAGRAM_GRAPH_URL):
            raise InstagramMalformedResponseError(
                f"paging.next points away from the Graph host ({_where(next_url)})"
            )
        has_token = any(k == "access_token" for k, _ in parse_qsl(urlsplit(next_url).query))
        body = _graph_get(next_url, {} if has_token else {"access_token": access_token})
    else:
        body = _graph_get(
            _graph("me/media", versioned=True),
            {"fields": MEDIA_FIELDS, "limit": limit, "access_token": access_token},
        )
    data = body.get("data")
    if not isinstance(data, list):
        raise InstagramMalformedResponseError("/me/media answer has no data list")
    paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
    nxt = paging.get("next") if isinstance(paging.get("next"), str) and paging["next"] else None
    return MediaPage(items=[m for m in data if isinstance(m, dict)], next_url=nxt)


def iter_media(
    *, access_token: str, limit: int = 25, max_items: int = 100, max_pages: int = 50
) -> Iterator[dict]:
    """Media items newest first, following ``paging.next`` until it is absent (a
    short page is not the end). Stops at ``max_items``, after ``max_pages`` pages,
    or when a ``next`` URL repeats (a server looping on the same cursor)."""
    seen, pages = 0, 1
    followed: set[str] = set()
    page = get_media_page(access_token=access_token, limit=limit)
    while True:
        for item in page.items:
            if seen >= max_items:
                return
            yield item
            seen += 1
        nxt = page.next_url
        if seen >= max_items or not nxt or nxt in followed or pages >= max_pages:
            return
        followed.add(nxt)
        page = get_media_page(access_token=access_token, next_url=nxt)
        pages += 1
