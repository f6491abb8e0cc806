"""Fixtures for the security suites: a frozen rate-limit clock and the small rate
limits counted in this test's own cache (tests/conftest.py's ``private_cache``)."""

import types

import pytest


class Clock:
    """The clock django-ratelimit reads its windows from, moved by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ratelimit_clock(monkeypatch):
    """Freeze django-ratelimit's clock so a window never ends in the middle of a
    test (its windows end at a per-key jittered second of each period)."""
    clock = Clock(1_800_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", types.SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
def limits_on(settings, private_cache, ratelimit_clock):
    """Rate limits on, small, and counted in this test's own cache."""
    settings.RATELIMIT_ENABLE = True
    settings.RATELIMIT_LOGIN = "3/m"
    settings.RATELIMIT_OAUTH_CALLBACK = "3/m"
    settings.RATELIMIT_HOOK = "3/m"
    settings.RATELIMIT_META_CALLBACKS = "3/m"
    settings.RATELIMIT_ADMIN_LOGIN = "3/m"
    settings.RATELIMIT_PROXY_COUNT = 0
    return ratelimit_clock
