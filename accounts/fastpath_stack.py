"""What Django's stack does around the public reads that the WSGI fast path
(``accounts.fastpath``) answers itself, so that it does exactly the same: whether
the settings let it answer at all, which requests only Django may answer (a Host
not in ``ALLOWED_HOSTS``, plain HTTP under ``SECURE_SSL_REDIRECT``, a session or
CSRF cookie, whose middleware may answer ``Set-Cookie``), the scheme Django reads,
and the headers the middleware adds to an answer, found by running that
middleware's own ``process_response`` on a probe response (X-Frame-Options,
Content-Length, HSTS, X-Content-Type-Options, Referrer-Policy,
Cross-Origin-Opener-Policy, a CSP where one applies)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host
from django.utils.module_loading import import_string

# The middleware list the fast path was checked against, and what each does to a
# request it answers: runs ``process_response`` to add headers (HEADERS), adds
# Content-Length (LENGTH), or nothing once the checks of :class:`Stack` hold.
HEADERS, LENGTH, NOTHING = "headers", "length", "nothing"
MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": HEADERS,
    "whitenoise.middleware.WhiteNoiseMiddleware": NOTHING,
    "csp.middleware.CSPMiddleware": HEADERS,
    "accounts.ratelimit.RateLimitMiddleware": NOTHING,
    "corsheaders.middleware.CorsMiddleware": NOTHING,
    "django.contrib.sessions.middleware.SessionMiddleware": NOTHING,
    "django.middleware.common.CommonMiddleware": LENGTH,
    "django.middleware.csrf.CsrfViewMiddleware": NOTHING,
    "django.contrib.auth.middleware.AuthenticationMiddleware": NOTHING,
    "django.contrib.messages.middleware.MessageMiddleware": NOTHING,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": HEADERS,
}
_MAX_HOSTS = 32
Headers = list[tuple[str, str]]


class _Probe(HttpRequest):
    """A request the header-adding middleware can inspect: path and scheme."""

    def __init__(self, path_info: str, secure: bool) -> None:
        super().__init__()
        self.path = self.path_info = path_info
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


def problem(paths: list[str]) -> str | None:
    """Why Django could answer these URLs otherwise than the fast path would under
    the current settings (None: it cannot)."""
    if list(settings.MIDDLEWARE) != list(MIDDLEWARE):
        return "MIDDLEWARE differs from the list the fast path was checked against"
    if settings.USE_X_FORWARDED_HOST or settings.FORCE_SCRIPT_NAME is not None:
        return "USE_X_FORWARDED_HOST or FORCE_SCRIPT_NAME is set"
    if settings.PREPEND_WWW or settings.DISALLOWED_USER_AGENTS:
        return "PREPEND_WWW or DISALLOWED_USER_AGENTS is set"
    if settings.DEFAULT_CHARSET.lower() != "utf-8":
        return "DEFAULT_CHARSET is not utf-8"
    if settings.CSRF_USE_SESSIONS:
        return "CSRF_USE_SESSIONS is set (every request would read the session)"
    if getattr(settings, "WHITENOISE_ROOT", None):
        return "WHITENOISE_ROOT is set (it may serve any path)"
    static = "/" + settings.STATIC_URL.lstrip("/") if settings.STATIC_URL else ""
    if not static or any(path.startswith(static) for path in paths):
        return "STATIC_URL covers a URL of the fast path"
    if any(re.match(settings.CORS_URLS_REGEX, path) for path in paths):
        return "CORS_URLS_REGEX covers a URL of the fast path"
    from corsheaders.signals import check_request_enabled

    if check_request_enabled.has_listeners():
        return "a check_request_enabled receiver may turn CORS on for any URL"
    return None


class Stack:
    """The settings-derived part; rebuilt with the fast path's configuration."""

    def __init__(self) -> None:
        header = settings.SECURE_PROXY_SSL_HEADER
        self.proxy_header: tuple[str, str] | None = tuple(header) if header else None  # type: ignore[assignment]
        self.redirect = settings.SECURE_SSL_REDIRECT
        self.allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not self.allowed_hosts:
            self.allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        self.cookies = (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)
        self.hosts: set[str] = set()
        self.trailers: dict[tuple[tuple[bool, ...], bool, int], tuple[Headers, Headers]] = {}
        self.csp_prefixes = tuple(
            tuple((getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
            for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
        )
        self.header_middleware = {
            path: import_string(path)(lambda request: None)
            for path, role in MIDDLEWARE.items()
            if role == HEADERS
        }

    def admit(self, environ: dict[str, Any]) -> str | None:
        """The scheme Django reads (``http`` or ``https``, ``SECURE_PROXY_SSL_HEADER``
        believed) for a request the fast path may answer; None for one only Django
        may: a session or CSRF cookie, a Host it refuses, no Host header, a
        redirect to HTTPS."""
        cookie = environ.get("HTTP_COOKIE")
        if cookie and any(name in parse_cookie(cookie) for name in self.cookies):
            return None
        host = environ.get("HTTP_HOST")
        if not host or not self._host_allowed(host):
            return None
        scheme = environ.get("wsgi.url_scheme")
        if self.proxy_header is not None:
            forwarded = environ.get(self.proxy_header[0])
            if forwarded is not None:
                secure = forwarded.split(",", 1)[0].strip() == self.proxy_header[1]
                scheme = "https" if secure else "http"
        if scheme not in ("http", "https") or (self.redirect and scheme != "https"):
            return None
        return scheme

    def _host_allowed(self, host: str) -> bool:
        if host in self.hosts:
            return True
        domain, _ = split_domain_port(host)
        if not domain or not validate_host(domain, self.allowed_hosts):
            return False
        if len(self.hosts) >= _MAX_HOSTS:
            self.hosts.clear()
        self.hosts.add(host)
        return True

    def trailer(self, path: str, secure: bool, status: int) -> tuple[Headers, Headers]:
        """The headers Django's middleware adds to such an answer, (before, after)
        Content-Length. They depend on the scheme, the status (django-csp skips
        some under DEBUG) and whether a CSP rule excludes the path, nothing else."""
        key = (tuple(path.startswith(p) for p in self.csp_prefixes), secure, status)
        found = self.trailers.get(key)
        if found is None:
            request = _Probe(path, secure)
            response = HttpResponse(status=status)
            parts: list[Headers] = [[]]
            for name in reversed(MIDDLEWARE):
                role = MIDDLEWARE[name]
                if role == LENGTH:
                    parts.append([])
                elif role == HEADERS:
                    before = set(response.headers)
                    response = self.header_middleware[name].process_response(request, response)
                    parts[-1].extend((k, v) for k, v in response.headers.items() if k not in before)
            found = self.trailers[key] = (parts[0], parts[1])
        return found
