"""The WSGI fast path: the public token and feed reads answered from the served
entries (the process's copy, then the shared cache) without Django's
request/response stack.

``tokenagent/wsgi.py`` puts :class:`FastPath` in front of Django's handler. For a
request it can answer exactly as Django would, it reads the ``Visit`` as the view
does, asks the view's own rule (``accounts.fastpath_readers``: the token URLs, the
feed's JSON and ``/media``, a picture's 304) and sends the ``Answer`` with the
headers Django's middleware adds (``accounts.fastpath_stack``).
Everything else goes to Django unchanged: another URL or method, a cache miss
(only Django may query the database), what ``fastpath_stack`` leaves to Django (a
Host not in ``ALLOWED_HOSTS``, plain HTTP under ``SECURE_SSL_REDIRECT``, a session
or CSRF cookie), a ``SCRIPT_NAME``, a non-ASCII path, an answer Django would log,
and any error. Settings or a URLconf it was not checked against turn it off with
a warning. An answer is kept for the same request while its entry and max-age
hold, so a repeated read costs one cache lookup. The differential tests
(tests/accounts/test_fastpath_differential.py, test_fastpath_feed_differential.py)
compare it with Django byte for byte.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.core.signals import setting_changed
from django.http import QueryDict
from django.urls import URLPattern, converters, get_resolver, reverse

from accounts import fastpath_stack, ratelimit, serving_policy
from accounts.fastpath_readers import READERS, Miss, Reader

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

FAST_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where the URLs of READERS start (checked against the URLconf).
PREFIXES = ("/token", "/feed")
# Requests with longer query strings, Origin and Referer together are answered
# but not kept (a kept answer's memory is bounded by MEMO_SIZE times this).
MEMO_KEY_CHARS = 2048
_EMPTY_QUERY: dict[str, str] = {}


@dataclass(frozen=True)
class _Route:
    regex: re.Pattern[str]
    converters: dict[str, Any]
    reader: Reader | None  # None: a URL Django answers (it comes first)
    view: Callable[..., Any] | None


_SAMPLES = {converters.IntConverter: 1}


def _match(routes: tuple[_Route, ...], path: str) -> tuple[_Route, dict[str, Any]] | None:
    """The first route matching ``path`` and its converted arguments, as Django's
    resolver picks it (a converter refusing a value moves on to the next one)."""
    sub = path[1:]
    for route in routes:
        match = route.regex.search(sub)
        if match is None:
            continue
        kwargs = match.groupdict()
        try:
            for name, value in kwargs.items():
                kwargs[name] = route.converters[name].to_python(value)
        except ValueError:
            continue
        return route, kwargs
    return None


class _Config:
    """What the fast path derives from settings and the URLconf; rebuilt when a
    setting changes (tests)."""

    def __init__(self) -> None:
        self.routes, samples = self._routes()
        self.problem = (
            fastpath_stack.problem(samples)
            if self.routes
            else ("the URLconf does not mount the public reads where accounts.urls puts them")
        )
        self.stack = fastpath_stack.Stack()

    @staticmethod
    def _routes() -> tuple[tuple[_Route, ...], list[str]]:
        """``accounts.urls``'s patterns in order and a URL of each one the fast path
        reads, provided that Django resolves each such URL (reversed by name) to the
        view the fast path would pick for it: a pattern Django answers that matches
        first wins there too. Nothing when one does not."""
        from accounts import urls

        routes = tuple(
            _Route(
                p.pattern.regex,
                p.pattern.converters,
                READERS.get(p.callback) if isinstance(p, URLPattern) else None,
                p.callback if isinstance(p, URLPattern) else None,
            )
            for p in urls.urlpatterns
        )
        root = get_resolver()
        samples = []
        for pattern in urls.urlpatterns:
            if isinstance(pattern, URLPattern) and pattern.callback in READERS:
                sample = {
                    k: _SAMPLES.get(type(c), "a") for k, c in pattern.pattern.converters.items()
                }
                path = reverse(f"accounts:{pattern.name}", kwargs=sample)
                found = _match(routes, path)
                if found is None or found[0].view is not pattern.callback:
                    return (), []
                if root.resolve(path).func is not pattern.callback:
                    return (), []
                samples.append(path)
        return routes, samples


@dataclass(frozen=True, slots=True)
class _Answered:
    """An answer sent, kept for the same request while its entry and stamp hold."""

    reader: Reader
    kwargs: dict[str, Any]
    entry: Any  # _UNREAD: the answer did not depend on an entry
    stamp: object
    status: str
    headers: list[tuple[str, str]]
    body: bytes


_UNREAD = object()


class FastPath:
    """WSGI middleware: ``FastPath(django_wsgi_handler)``.

    An answer is kept (at most ``MEMO_SIZE`` answers and ``MEMO_BYTES`` of bodies,
    counted as if none were shared, for requests without cookies) under
    every request value it was computed from; the same request is answered again
    from it after one cache read that finds the same entry with the same stamp."""

    MEMO_SIZE = 1024
    MEMO_BYTES = 8 * 1024 * 1024

    def __init__(self, django: WSGIApp) -> None:
        self.django = django
        self._config: _Config | None = None
        self._memo: dict[tuple, _Answered] = {}
        self._memo_bytes = 0
        _instances.add(self)

    def config(self) -> _Config:
        config = self._config
        if config is None:
            config = self._config = _Config()
            if config.problem:
                logger.warning("token fast path off: %s", config.problem)
        return config

    def reset(self) -> None:
        self._config = None
        self._memo, self._memo_bytes = {}, 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIXES) and environ.get("REQUEST_METHOD") in FAST_METHODS:
            try:
                answered = self._again(environ, path) or self._answer(environ, path)
            except Miss:
                answered = None
            except Exception:
                logger.exception("token fast path failed; Django answers")
                answered = None
            if answered is not None:
                start_response(answered.status, list(answered.headers))
                return [answered.body]
        return self.django(environ, start_response)

    def _key(self, environ: Environ, path: str) -> tuple | None:
        """Every request value an answer may depend on, for a request without cookies
        or a script name (None otherwise: not kept)."""
        if environ.get("HTTP_COOKIE") or environ.get("SCRIPT_NAME"):
            return None
        if "SCRIPT_URL" in environ or "REDIRECT_URL" in environ:
            return None
        config = self._config
        proxy = config.stack.proxy_header if config is not None else None
        query = environ.get("QUERY_STRING") or ""
        origin = environ.get("HTTP_ORIGIN") or ""
        referer = environ.get("HTTP_REFERER") or ""
        encoding = environ.get("HTTP_ACCEPT_ENCODING") or ""
        if len(query) + len(origin) + len(referer) + len(encoding) > MEMO_KEY_CHARS:
            return None
        return (
            path,
            environ["REQUEST_METHOD"],
            environ.get("HTTP_HOST"),
            environ.get("wsgi.url_scheme"),
            environ.get(proxy[0]) if proxy else None,
            query,
            origin,
            referer,
            encoding,
            environ.get("HTTP_IF_NONE_MATCH"),
        )

    def _again(self, environ: Environ, path: str) -> _Answered | None:
        key = self._key(environ, path)
        kept = self._memo.get(key) if key is not None else None
        if kept is None or key is None:
            return None
        if kept.entry is not _UNREAD:
            entry = kept.reader.fetch(kept.kwargs)
            if entry is not kept.entry:
                if entry != kept.entry:
                    return None
                # An equal copy (the cache read it again): compared once, not per read.
                kept = self._memo[key] = dataclasses.replace(kept, entry=entry)
            if kept.reader.stamp(entry) != kept.stamp:
                return None
        return kept

    def _answer(self, environ: Environ, path: str) -> _Answered | None:
        config = self.config()
        if config.problem or environ.get("SCRIPT_NAME") or not path.isascii():
            return None
        if "SCRIPT_URL" in environ or "REDIRECT_URL" in environ:
            return None
        found = _match(config.routes, path)
        if found is None or ratelimit.rule_for(path) is not None:
            return None
        reader, kwargs = found[0].reader, found[1]
        if reader is None:
            return None
        scheme = config.stack.admit(environ)
        if scheme is None:
            return None
        host = environ["HTTP_HOST"]
        query = environ.get("QUERY_STRING")
        params = _EMPTY_QUERY
        if query:
            try:
                params = QueryDict(query.encode("latin-1"))
            except (UnicodeError, SuspiciousOperation):
                return None  # Django answers 400 (too many fields) or fails alike
        visit = serving_policy.visit_of(
            environ,
            method=environ["REQUEST_METHOD"],
            const=params.get("const"),
            limit=params.get("limit"),
            after=params.get("after"),
            agent_origin=f"{scheme}://{host}",
        )
        read: list[tuple[Any, object]] = []

        def entry() -> Any:
            found = reader.fetch(kwargs)
            read.append((found, reader.stamp(found)))
            return found

        answer = reader.answer(visit, entry, path, kwargs)
        if answer.status >= 400 and not answer.quiet:
            return None  # Django logs it (django.request)
        body = answer.body if isinstance(answer.body, bytes) else answer.body.encode()
        headers = [("Content-Type", answer.content_type)] if answer.content_type else []
        headers.extend(answer.headers)
        before, after = config.stack.trailer(path, scheme == "https", answer.status)
        named = {name.lower() for name, _ in headers}
        headers.extend(h for h in before if h[0].lower() not in named)
        headers.append(("Content-Length", str(len(body))))
        headers.extend(h for h in after if h[0].lower() not in named)
        for _, value in headers:
            if not value.isascii() or "\n" in value or "\r" in value:
                return None
        status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        used, stamp = read[0] if read else (_UNREAD, None)
        answered = _Answered(reader, kwargs, used, stamp, status, headers, body)
        key = self._key(environ, path)
        # Kept only if the stamp did not move while the answer was made.
        if key is not None and len(read) <= 1 and (not read or reader.stamp(used) == stamp):
            if len(self._memo) >= self.MEMO_SIZE or self._memo_bytes > self.MEMO_BYTES:
                self._memo, self._memo_bytes = {}, 0
            self._memo[key] = answered
            self._memo_bytes += len(body)
        return answered


_instances: weakref.WeakSet[FastPath] = weakref.WeakSet()


def _settings_changed(**kwargs: Any) -> None:
    for instance in list(_instances):
        instance.reset()


setting_changed.connect(_settings_changed, dispatch_uid="accounts.fastpath")
