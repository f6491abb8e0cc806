"""Sandbox Instagram state, kept in the Django cache under ``sandbox:`` so several
processes sharing a cache (Redis) share it: used codes, scripted failures,
persistent failure modes, delays, the response shape, call counters, revocations.
"""

from django.core.cache import cache

ENDPOINTS = ("authorize", "code_exchange", "long_lived", "refresh", "me", "media")
SHAPES = ("observed", "documented")
_P = "sandbox:"
_FOREVER = None


def _key(*parts: str) -> str:
    return _P + ":".join(parts)


def reset() -> None:
    keys = [_key("shape"), _key("revoked")]
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
        queue = cache.get(key)
        if queue:
            cache.set(key, queue[1:], _FOREVER)
            return queue[0]
    return cache.get(_key("mode", endpoint)) or cache.get(_key("mode", "*"))


def claim_code(nonce: str) -> bool:
    """Authorization codes are single-use: True the first time only."""
    return cache.add(_key("code", nonce), 1, 3600)


def revoke(username: str, at: int) -> None:
    revoked = cache.get(_key("revoked")) or {}
    revoked[username.lower()] = at
    cache.set(_key("revoked"), revoked, _FOREVER)


def revoked_at(username: str) -> int | None:
    return (cache.get(_key("revoked")) or {}).get(username.lower())
