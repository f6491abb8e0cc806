"""Abuse limits (accounts/ratelimit.py): /login/, the OAuth callback, the refresh
hook and Meta's callbacks answer 429 with Retry-After once an address exceeds
its rate; the token and feed URLs are never limited; forged X-Forwarded-For does not
reset a counter; a dead cache fails open instead of answering 500."""

import os

import pytest
from django.core.cache import caches
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from accounts import ratelimit
from tests.factories import make_account
from tests.security import hostile
from tests.served_urls import FEED_URLS, TOKEN_URLS

pytestmark = pytest.mark.django_db

LIMITED = [
    ("get", "/login/"),
    ("post", "/invite/a-signed-invite-token/"),
    ("get", "/oauth/instagram/callback/?code=abc&state=xyz"),
    ("post", "/hooks/refresh/"),
    ("post", "/instagram/deauthorize/"),
    ("post", "/instagram/data-deletion/"),
    ("get", "/admin/login/"),
    ("post", "/admin/login/"),
]


def _send(client, method, url, **extra):
    return getattr(client, method)(url, **extra)


@pytest.mark.parametrize(("method", "url"), LIMITED)
def test_fourth_request_in_a_minute_is_refused_with_retry_after(client, limits_on, method, url):
    for _ in range(3):
        assert _send(client, method, url).status_code != 429
    response = _send(client, method, url)
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("method", "url"), LIMITED)
def test_requests_pass_again_once_retry_after_has_elapsed(client, limits_on, method, url):
    for _ in range(3):
        _send(client, method, url)
    refused = _send(client, method, url)
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    # Retry-After is exact: a second early is still refused, on time passes.
    limits_on.advance(retry_after - 1)
    assert _send(client, method, url).status_code == 429
    limits_on.advance(1)
    assert _send(client, method, url).status_code != 429


def test_browser_pages_get_html_and_machine_endpoints_json(client, limits_on):
    for _ in range(4):
        login = client.get("/login/")
        hook = client.post("/hooks/refresh/")
    assert login.status_code == hook.status_code == 429
    assert login["Content-Type"].startswith("text/html")
    assert b"Too many requests" in login.content
    assert hook.json()["error"] == "rate_limited"
    assert hook.json()["retry_after"] == int(hook["Retry-After"])


def test_the_trailing_slashless_path_shares_the_counter(client, limits_on):
    for _ in range(3):
        client.get("/login")
    assert client.get("/login/").status_code == 429


def test_each_group_counts_on_its_own(client, limits_on):
    for _ in range(4):
        client.get("/login/")
    assert client.get("/login/").status_code == 429
    assert client.post("/hooks/refresh/").status_code != 429
    assert client.post("/instagram/deauthorize/").status_code != 429


def test_invite_links_count_against_the_sign_in_budget(client, limits_on):
    for _ in range(2):
        client.get("/invite/some-token/")
    client.post("/invite/other-token/")
    assert client.get("/login/").status_code == 429


def test_admin_login_is_limited_even_for_the_right_password(client, limits_on, django_user_model):
    """Django's admin sign-in takes passwords: without a limit it is a guessing
    oracle. It has its own budget (RATELIMIT_ADMIN_LOGIN), apart from /login/."""
    django_user_model.objects.create_user(username="boss", password="right-pw", is_staff=True)
    for _ in range(3):
        guess = client.post("/admin/login/", {"username": "boss", "password": "wrong"})
        assert guess.status_code == 200  # the form again
    refused = client.post("/admin/login/", {"username": "boss", "password": "right-pw"})
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("text/html")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/login").status_code == 429  # with or without the slash
    assert client.get("/login/").status_code != 429


def test_a_flood_of_unknown_names_does_not_reset_a_login_limit(
    client, limits_on, settings, tmp_path
):
    """On the file cache of a one-machine install (300 entries, then it culls a third
    at random), entries stored for unknown names used to evict the counters."""
    settings.CACHES = hostile.production_caches(tmp_path)
    make_account(username="acme_bakery", slug="acme")
    for _ in range(3):
        client.get("/login/")
    assert client.get("/login/").status_code == 429
    for i in range(1000):
        assert client.get(f"/token/nobody-{i}.json").status_code == 404
    assert client.get("/login/").status_code == 429


def test_both_meta_callbacks_share_one_budget(client, limits_on):
    for _ in range(3):
        client.post("/instagram/deauthorize/")
    assert client.post("/instagram/data-deletion/").status_code == 429


def test_each_address_has_its_own_counter(client, limits_on):
    for _ in range(4):
        client.get("/login/", REMOTE_ADDR="203.0.113.7")
    assert client.get("/login/", REMOTE_ADDR="203.0.113.7").status_code == 429
    assert client.get("/login/", REMOTE_ADDR="203.0.113.8").status_code != 429


def test_ipv6_addresses_in_one_slash_64_share_a_counter(client, limits_on):
    for i in range(3):
        client.get("/login/", REMOTE_ADDR=f"2001:db8:1:2::{i + 1}")
    assert client.get("/login/", REMOTE_ADDR="2001:db8:1:2:ffff::9").status_code == 429
    assert client.get("/login/", REMOTE_ADDR="2001:db8:1:3::1").status_code != 429


def test_forged_forwarded_for_is_ignored_without_a_trusted_proxy(client, limits_on):
    for i in range(3):
        client.get("/login/", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert client.get("/login/", HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


def test_behind_one_proxy_the_address_it_appended_counts(client, limits_on, settings):
    """Heroku's router appends the address it saw; anything left of it is the
    client's own claim and must not buy a fresh counter."""
    settings.RATELIMIT_PROXY_COUNT = 1
    for i in range(3):
        client.get("/login/", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 203.0.113.50")
    assert client.get("/login/", HTTP_X_FORWARDED_FOR="203.0.113.50").status_code == 429
    assert client.get("/login/", HTTP_X_FORWARDED_FOR="203.0.113.51").status_code != 429


@pytest.mark.parametrize("url", TOKEN_URLS)
def test_token_urls_are_never_limited(client, limits_on, settings, url):
    for name in ("LOGIN", "OAUTH_CALLBACK", "HOOK", "META_CALLBACKS"):
        setattr(settings, f"RATELIMIT_{name}", "1/m")
    make_account(username="acme_bakery", slug="acme")
    statuses = {client.get(url).status_code for _ in range(60)}
    assert statuses == {200}


@pytest.mark.parametrize("url", FEED_URLS)
def test_feed_urls_are_never_limited(client, limits_on, settings, url):
    for name in ("LOGIN", "OAUTH_CALLBACK", "HOOK", "META_CALLBACKS"):
        setattr(settings, f"RATELIMIT_{name}", "1/m")
    make_account(username="acme_bakery", slug="acme")
    # 503 for .json and /media: the account's feed was never read.
    statuses = {client.get(url).status_code for _ in range(60)}
    assert len(statuses) == 1 and statuses <= {200, 503}


def test_token_urls_cost_no_rate_limit_cache_round_trip(client, limits_on, monkeypatch):
    make_account(username="acme_bakery", slug="acme")
    calls = []
    monkeypatch.setattr(ratelimit, "get_usage", lambda *a, **k: calls.append(a))
    for url in TOKEN_URLS + FEED_URLS:
        client.get(url)
    client.get("/login/")
    assert len(calls) == 1


@pytest.mark.parametrize("off", ["off", "OFF", ""])
def test_off_turns_one_limit_off(client, limits_on, settings, off):
    settings.RATELIMIT_LOGIN = off
    assert 429 not in {client.get("/login/").status_code for _ in range(10)}
    for _ in range(4):
        client.post("/hooks/refresh/")
    assert client.post("/hooks/refresh/").status_code == 429


@pytest.mark.parametrize("typo", ["20", "20/minute", "abc", "0/m/", "-1/m", "20 /m"])
def test_a_malformed_rate_stops_the_agent_at_start(limits_on, settings, typo):
    from django.core.exceptions import ImproperlyConfigured

    settings.RATELIMIT_HOOK = typo
    with pytest.raises(ImproperlyConfigured, match="RATELIMIT_HOOK"):
        ratelimit.RateLimitMiddleware(lambda request: HttpResponse())


@pytest.mark.parametrize("rate", ["20/m", "100/5m", "1/s", "1000/d", "5/2h"])
def test_well_formed_rates_are_accepted(limits_on, settings, rate):
    settings.RATELIMIT_HOOK = rate
    ratelimit.RateLimitMiddleware(lambda request: HttpResponse())
    rule = ratelimit.rule_for("/hooks/refresh/")
    assert rule is not None and ratelimit.rate_of(rule) == rate


def test_ratelimit_enable_false_turns_every_limit_off(client, limits_on, settings):
    settings.RATELIMIT_ENABLE = False
    assert 429 not in {client.post("/hooks/refresh/").status_code for _ in range(10)}


def test_limits_are_on_by_default_in_the_real_settings():
    from tokenagent import settings as real

    assert real.RATELIMIT_ENABLE is True
    assert real.RATELIMIT_LOGIN and real.RATELIMIT_OAUTH_CALLBACK
    assert real.RATELIMIT_HOOK and real.RATELIMIT_META_CALLBACKS
    assert "accounts.ratelimit.RateLimitMiddleware" in real.MIDDLEWARE
    # Before sessions: a refused request touches neither the session nor the database.
    order = real.MIDDLEWARE
    assert order.index("accounts.ratelimit.RateLimitMiddleware") < order.index(
        "django.contrib.sessions.middleware.SessionMiddleware"
    )


def test_a_refused_request_does_not_touch_the_database(
    client, limits_on, django_assert_num_queries
):
    for _ in range(3):
        client.get("/login/")
    with django_assert_num_queries(0):
        assert client.get("/login/").status_code == 429


def test_an_unreachable_cache_fails_open_instead_of_answering_500(client, limits_on, settings):
    settings.CACHES = {
        alias: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # Port 1 on loopback: nothing listens there; connections are refused at once.
            "LOCATION": "redis://127.0.0.1:1/0",
        }
        for alias in settings.CACHES
    }
    response = client.post("/hooks/refresh/")
    assert response.status_code not in (429, 500)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    forwarded=st.text(max_size=200),
    remote=st.one_of(st.text(max_size=60), st.ip_addresses().map(str)),
    proxies=st.integers(min_value=0, max_value=3),
)
def test_client_address_never_fails_on_hostile_headers(forwarded, remote, proxies):
    request = RequestFactory().get("/login/")
    request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    request.META["REMOTE_ADDR"] = remote
    with override_settings(RATELIMIT_PROXY_COUNT=proxies):
        address = ratelimit.client_address(request)
    # Either a normalised IP address or the one "unknown" bucket: never raw input.
    assert address == "unknown" or ratelimit._masked(address) == address


@pytest.mark.redis
def test_limits_count_across_processes_in_the_real_redis(client, limits_on, settings):
    """The production cache: counters are shared (one Redis), increments atomic."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    settings.CACHES = {
        alias: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"tokenagent-test-ratelimit-{alias}-{os.getpid()}",
        }
        for alias in settings.CACHES
    }
    # Counters expire by themselves (period + 5 s); never clear() a shared Redis.
    addr = f"192.0.2.{os.getpid() % 250 + 1}"
    for _ in range(3):
        assert client.post("/hooks/refresh/", REMOTE_ADDR=addr).status_code != 429
    # A second client (another web worker) sees the same counter.
    refused = Client().post("/hooks/refresh/", REMOTE_ADDR=addr)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert caches["default"].get("anything") is None  # the real Redis answered
