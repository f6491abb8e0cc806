"""Sandbox Instagram state, kept in the Django cache under ``sandbox:`` so several
processes sharing a cache (Redis) share it: used codes, scripted failures,
persistent failure modes, delays, the response shape, call counters, revocations,
the posts the control API changed (catalog.py), the CDN URL lifetime (cdn.py),
and a journal of the requests received (secrets in it only as fingerprints).
"""

import hashlib
import threading

from django.conf import settings
from django.core.cache import cache as _shared_cache
from django.core.cache.backends.locmem import LocMemCache

# The standalone server (manage.py sandbox_server) keeps its state in its own memory
# unless told to share the configured cache; settings.SANDBOX_MEMORY_STATE says which.
_memory_cache = LocMemCache(
    "tokenagent-sandbox", {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 100000}}
)
# Read-modify-write steps (failure queue, journal) are atomic within one process.
_lock = threading.Lock()


class _Store:
    def __getattr__(self, name):
        memory = getattr(settings, "SANDBOX_MEMORY_STATE", False)
        return getattr(_memory_cache if memory else _shared_cache, name)


cache = _Store()

ENDPOINTS = ("authorize", "code_exchange", "long_lived", "refresh", "me", "media", "cdn")
SHAPES = ("observed", "documented")
_P = "sandbox:"
_FOREVER = None
JOURNAL_SIZE = 200
# Parameters the journal never stores in clear.
SENSITIVE_PARAMS = frozenset({"access_token", "client_secret", "code"})


def _key(*parts: str) -> str:
    return _P + ":".join(parts)


def reset() -> None:
    keys = [_key("shape"), _key("revoked"), _key("journal")]
    keys += [_key("posts"), _key("post_serial"), _key("cdn_ttl")]
    for e in (*ENDPOINTS, "*"):
        keys += [_key("fail", e), _key("mode", e), _key("delay", e), _key("calls", e)]
    cache.delete_many(keys)


def shape() -> str:
    return cache.get(_key("shape")) or "observed"


def set_shape(value: str) -> None:
    if value not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    cache.set(_key("shape"), value, _FOREVER)


def count_call(endpoint: str) -> None:
    key = _key("calls", endpoint)
    if not cache.add(key, 1, _FOREVER):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, _FOREVER)


def calls() -> dict[str, int]:
    found = cache.get_many([_key("calls", e) for e in ENDPOINTS])
    return {e: int(found.get(_key("calls", e), 0)) for e in ENDPOINTS}


def queue_failures(endpoint: str, failures: list[str]) -> None:
    key = _key("fail", endpoint)
    cache.set(key, [*(cache.get(key) or []), *failures], _FOREVER)


def set_mode(endpoint: str, failure: str | None) -> None:
    if failure:
        cache.set(_key("mode", endpoint), failure, _FOREVER)
    else:
        cache.delete(_key("mode", endpoint))


def set_delay(endpoint: str, seconds: float) -> None:
    if seconds > 0:
        cache.set(_key("delay", endpoint), float(seconds), _FOREVER)
    else:
        cache.delete(_key("delay", endpoint))


def delay_for(endpoint: str) -> float:
    return float(cache.get(_key("delay", endpoint)) or cache.get(_key("delay", "*")) or 0)


def next_failure(endpoint: str) -> str | None:
    """The failure to play for this call: a queued one first (consumed), else the mode."""
    for e in (endpoint, "*"):
        key = _key("fail", e)
        with _lock:
            queue = cache.get(key)
            if queue:
                cache.set(key, queue[1:], _FOREVER)
                return queue[0]
    return cache.get(_key("mode", endpoint)) or cache.get(_key("mode", "*"))


def claim_code(nonce: str) -> bool:
    """Authorization codes are single-use: True the first time only."""
    return cache.add(_key("code", nonce), 1, 3600)


def revoke(username: str, at: float) -> None:
    revoked = cache.get(_key("revoked")) or {}
    revoked[username.lower()] = at
    cache.set(_key("revoked"), revoked, _FOREVER)


def revoked_at(username: str) -> float | None:
    return (cache.get(_key("revoked")) or {}).get(username.lower())


def fingerprint(value: str) -> str:
    """What the journal shows instead of a token, secret or code: tests compare it
    with the fingerprint of the value they expect, and nothing leaks when they print."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def _params(query) -> dict[str, list[str]]:
    return {
        k: [fingerprint(v) if k in SENSITIVE_PARAMS else v for v in values]
        for k, values in query.lists()
    }


def record_request(endpoint: str, request) -> None:
    """Append what a call sent (method, path, query, form, a few headers) to the journal."""
    entry = {
        "endpoint": endpoint,
        "method": request.method,
        "path": request.path,
        "query": _params(request.GET),
        "form": _params(request.POST) if request.method == "POST" else {},
        "content_type": request.content_type or "",
        "user_agent": request.headers.get("User-Agent", ""),
    }
    key = _key("journal")
    with _lock:
        cache.set(key, [*(cache.get(key) or []), entry][-JOURNAL_SIZE:], _FOREVER)


def journal() -> list[dict]:
    """The requests received since the last reset, oldest first (at most JOURNAL_SIZE)."""
    return list(cache.get(_key("journal")) or [])
