"""The only code that speaks HTTP to Instagram (instagram-api.md).

It knows URLs, parameters and response shapes, nothing about our models. Every
call goes through one ``requests.Session`` with a connect and a read timeout and
a descriptive User-Agent. Failures become the exception family below (section 7
of instagram-api.md); no message, repr or log line carries a token, a secret or
an ``access_token=`` URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from tokenagent.redaction import redact

logger = logging.getLogger(__name__)

REQUIRED_SCOPE = "instagram_business_basic"
PROFILE_FIELDS = "user_id,username,name,account_type,profile_picture_url,media_count"
MEDIA_FIELDS = "id,caption,media_type,media_url,permalink,thumbnail_url,timestamp,username"


# --- Errors ---------------------------------------------------------------------------


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
    ) -> None:
        self.message = redact(message)
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
    """Codes 3 and 100, bad app id/secret, rejected code: a bug or a setup problem.
    Never retried."""


class InstagramTransientError(InstagramError):
    """Network failure, timeout, HTTP 5xx, codes 1/2 or ``is_transient``: retry with backoff."""

    retryable = True


class InstagramRateLimitError(InstagramTransientError):
    """Codes 4, 17, 32, 613, 80002, 341, 368. ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InstagramMalformedResponseError(InstagramError):
    """A 2xx answer that is not the JSON shape the API documents."""

    retryable = True


class InstagramTokenTooYoungError(InstagramError):
    """Refresh refused because the token is younger than 24 hours (not retried)."""


class InstagramCodeExchangeError(InstagramConfigurationError):
    """The authorization code was rejected (expired, reused, wrong redirect_uri).
    Never retry a rejected code."""


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


@lru_cache(maxsize=1)
def _session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = settings.INSTAGRAM_USER_AGENT
    s.headers["Accept"] = "application/json"
    return s


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


def _request(method: str, url: str, **kw: Any) -> requests.Response:
    try:
        return _session().request(method, url, timeout=_timeout(), **kw)
    except requests.Timeout as exc:
        raise InstagramTransientError(
            f"Instagram did not answer in time ({type(exc).__name__})"
        ) from None
    except requests.RequestException as exc:
        # str(exc) can contain the full URL with access_token=; redact() scrubs it, and
        # "from None" keeps the raw exception out of tracebacks.
        raise InstagramTransientError(
            f"Could not reach Instagram: {type(exc).__name__}: {exc}"
        ) from None


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


_RATE_LIMIT_CODES = {4, 17, 32, 613, 80002, 341, 368}
_AUTH_CODES = {190, 102}
_TRANSIENT_CODES = {1, 2}
_CONFIG_CODES = {3, 100}


def _retry_after_hint(resp: requests.Response, err: dict[str, Any]) -> float | None:
    """Seconds to wait, from ``estimated_time_to_regain_access`` (minutes) in the
    usage headers, or a ``Retry-After`` header."""
    waits: list[float] = []
    for header in ("X-Business-Use-Case-Usage", "X-App-Usage"):
        raw = resp.headers.get(header)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        entries = data.values() if isinstance(data, dict) else []
        for entry in entries:
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, dict):
                    minutes = _int(item.get("estimated_time_to_regain_access"))
                    if minutes:
                        waits.append(minutes * 60.0)
    retry_after = resp.headers.get("Retry-After")
    if retry_after and _int(retry_after):
        waits.append(float(_int(retry_after)))
    return max(waits) if waits else None


def _graph_error(resp: requests.Response, body: Any) -> InstagramError:
    """Map a Graph ``{"error": {...}}`` answer (or its absence) onto the family."""
    status = resp.status_code
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        if status >= 500 or status == 429:
            cls = InstagramRateLimitError if status == 429 else InstagramTransientError
            return cls(f"Instagram answered HTTP {status}", status=status)
        return InstagramMalformedResponseError(
            f"Instagram answered HTTP {status} without a readable error", status=status
        )
    code, subcode = _int(err.get("code")), _int(err.get("error_subcode"))
    message = str(err.get("message") or err.get("error_user_msg") or "Instagram error")
    kw = {
        "code": code,
        "subcode": subcode,
        "error_type": str(err.get("type", "")),
        "status": status,
    }
    if code in _AUTH_CODES:
        return InstagramAuthError(message, **kw)
    if code in _RATE_LIMIT_CODES:
        return InstagramRateLimitError(message, retry_after=_retry_after_hint(resp, err), **kw)
    if code in _TRANSIENT_CODES or err.get("is_transient") is True or status >= 500:
        return InstagramTransientError(message, **kw)
    if code == 10 or (code is not None and 200 <= code <= 299):
        return InstagramPermissionError(message, **kw)
    if code in _CONFIG_CODES:
        return InstagramConfigurationError(message, **kw)
    return InstagramError(message, **kw)


def _graph_get(url: str, params: dict[str, Any]) -> dict[str, Any]:
    resp = _request("GET", url, params=params)
    body = _json(resp)
    if resp.status_code >= 400 or (isinstance(body, dict) and "error" in body):
        raise _graph_error(resp, body)
    if not isinstance(body, dict):
        raise InstagramMalformedResponseError(
            f"Instagram answered HTTP {resp.status_code} with a body that is not a JSON object",
            status=resp.status_code,
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
    return (now or timezone.now()) + timedelta(seconds=seconds)


def _token_string(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise InstagramMalformedResponseError("Instagram's token answer has no access_token")
    return token.strip()


def _permissions(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = raw.replace(" ", ",").split(",")
    elif isinstance(raw, list):
        items = [str(x) for x in raw]
    else:
        items = []
    return tuple(p.strip() for p in items if p.strip())


# --- The API ----------------------------------------------------------------------------


def authorize_url(*, redirect_uri: str, state: str, force_authentication: bool = True) -> str:
    """The Instagram authorization window (section 1), on the www host."""
    app_id, _ = _app_credentials()
    params = {
        "client_id": app_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": ",".join(settings.INSTAGRAM_SCOPES),
        "state": state,
        "enable_fb_login": "0",
        "force_authentication": "1" if force_authentication else "0",
    }
    return f"{settings.INSTAGRAM_AUTHORIZE_URL}?{urlencode(params)}"


def clean_code(code: str) -> str:
    """Strip the ``#_`` Instagram appends to codes (section 1)."""
    code = code.strip()
    while code.endswith("#_"):
        code = code[:-2]
    return code


def exchange_code(*, code: str, redirect_uri: str) -> ShortLivedToken:
    """Authorization code -> short-lived token (section 2). Accepts the documented
    ``data``-wrapped and the observed flat body; ``user_id`` number or string;
    ``permissions`` string or list. Requires ``instagram_business_basic``."""
    app_id, secret = _app_credentials()
    url = f"{settings.INSTAGRAM_API_URL.rstrip('/')}/oauth/access_token"
    resp = _request(
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
    body = _json(resp)
    if resp.status_code >= 500:
        raise InstagramTransientError(f"Instagram answered HTTP {resp.status_code}")
    if isinstance(body, dict) and ("error_type" in body or "error_message" in body):
        # This endpoint's own flat error shape (section 2).
        raise InstagramCodeExchangeError(
            str(body.get("error_message") or "Code exchange refused"),
            code=_int(body.get("code")),
            error_type=str(body.get("error_type", "")),
            status=resp.status_code,
        )
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raise _graph_error(resp, body)
    if resp.status_code >= 400:
        raise InstagramCodeExchangeError(
            f"Code exchange refused with HTTP {resp.status_code}", status=resp.status_code
        )
    if not isinstance(body, dict):
        raise InstagramMalformedResponseError("Code exchange answer is not a JSON object")
    body = _unwrap(body)
    token = _token_string(body)
    user_id = body.get("user_id")
    if user_id is None or isinstance(user_id, bool):
        raise InstagramMalformedResponseError("Code exchange answer has no user_id")
    permissions = _permissions(body.get("permissions"))
    if "permissions" in body and REQUIRED_SCOPE not in permissions:
        raise InstagramPermissionError(
            f"The account did not grant {REQUIRED_SCOPE}, which a feed needs"
        )
    return ShortLivedToken(access_token=token, user_id=str(user_id), permissions=permissions)


def exchange_for_long_lived(*, short_lived_token: str, now: datetime | None = None) -> TokenGrant:
    """Short-lived -> 60-day token (section 3): GET /access_token, ig_exchange_token."""
    _, secret = _app_credentials()
    body = _graph_get(
        _graph("access_token", versioned=False),
        {
            "grant_type": "ig_exchange_token",
            "client_secret": secret,
            "access_token": short_lived_token,
        },
    )
    body = _unwrap(body)
    return TokenGrant(
        access_token=_token_string(body),
        expires_at=_expires_at(body.get("expires_in"), now),
        token_type=str(body.get("token_type", "bearer")),
    )


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
                exc.message, code=exc.code, subcode=exc.subcode, status=exc.status
            ) from None
        raise
    body = _unwrap(body)
    return TokenGrant(
        access_token=_token_string(body),
        expires_at=_expires_at(body.get("expires_in"), now),
        token_type=str(body.get("token_type", "bearer")),
        permissions=_permissions(body.get("permissions")),
    )


def _looks_too_young(exc: InstagramError) -> bool:
    # What Instagram answers for a token under 24 h is unconfirmed (section 4); a
    # non-auth error whose message speaks of the 24 hours is taken as that refusal.
    text = exc.message.lower()
    return not isinstance(exc, InstagramAuthError | InstagramTransientError) and (
        "24 hours" in text or "too young" in text or "not old enough" in text
    )


def get_profile(*, access_token: str) -> Profile:
    """``GET /me`` (section 5), flat or ``data``-wrapped. Keyed on ``user_id``."""
    body = _unwrap(
        _graph_get(
            _graph("me", versioned=True),
            {"fields": PROFILE_FIELDS, "access_token": access_token},
        )
    )
    user_id, app_id = body.get("user_id"), body.get("id")
    username = body.get("username")
    if (user_id is None and app_id is None) or not isinstance(username, str) or not username:
        raise InstagramMalformedResponseError("/me answer has no user_id or username")
    return Profile(
        user_id=str(user_id if user_id is not None else app_id),
        id=str(app_id if app_id is not None else user_id),
        username=username,
        name=str(body.get("name") or ""),
        account_type=str(body.get("account_type") or ""),
        profile_picture_url=str(body.get("profile_picture_url") or ""),
        media_count=_int(body.get("media_count")),
    )


def get_media_page(*, access_token: str, limit: int = 25, next_url: str | None = None) -> MediaPage:
    """One page of ``/me/media`` (section 6). Pass ``next_url`` from the previous
    page to continue; ``next_url`` is None on the last page."""
    if next_url:
        body = _graph_get(next_url, {})
    else:
        body = _graph_get(
            _graph("me/media", versioned=True),
            {"fields": MEDIA_FIELDS, "limit": limit, "access_token": access_token},
        )
    data = body.get("data")
    if not isinstance(data, list):
        raise InstagramMalformedResponseError("/me/media answer has no data list")
    paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
    nxt = paging.get("next") if isinstance(paging.get("next"), str) else None
    return MediaPage(items=[m for m in data if isinstance(m, dict)], next_url=nxt)


def iter_media(*, access_token: str, limit: int = 25, max_items: int = 100) -> Iterator[dict]:
    """Media items newest first, following ``paging.next`` until it is absent."""
    seen = 0
    page = get_media_page(access_token=access_token, limit=limit)
    while True:
        for item in page.items:
            yield item
            seen += 1
            if seen >= max_items:
                return
        if not page.next_url:
            return
        page = get_media_page(access_token=access_token, next_url=page.next_url)
