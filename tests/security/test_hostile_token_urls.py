"""Hostile input on the public token URLs: odd account names, query strings,
headers and methods. None answers 500, none reflects input unescaped, none
serves a token to a request it should refuse, none changes what is stored."""

from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import InstagramAccount
from tests.factories import make_account
from tests.security import hostile
from tests.served_urls import FEED_URLS, TOKEN_URLS

TOKEN = "IGAAsecurityTestToken00000000000001"
# What a token URL may answer: served, not modified, refused (bad ?const=, not an
# allowed site), unknown, wrong method, or 503 for an account whose token is unusable.
TOKEN_STATUSES = {200, 304, 400, 403, 404, 405, 503}
FUZZ = hostile.fuzz(max_examples=120)

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts(private_cache):
    acme = make_account(username="acme_bakery", slug="acme", token=TOKEN, is_default=True)
    make_account(
        username="gone_bakery", slug="gone", status=InstagramAccount.Status.NEEDS_RECONNECT
    )
    return acme


@FUZZ
@given(name=hostile.text, suffix=st.sampled_from(["", ".json", ".js", ".txt"]))
def test_any_account_name_is_answered_without_500_or_reflection(accounts, name, suffix):
    before = hostile.snapshot()
    response = Client().get(f"/token/{quote(name, safe='')}{suffix}")
    hostile.assert_no_server_error(response, allow_503=True)
    assert response.status_code in TOKEN_STATUSES
    hostile.assert_not_reflected(response, name)
    if name != "acme":
        assert TOKEN not in response.content.decode(errors="replace")
    assert hostile.snapshot() == before


@FUZZ
@given(
    url=st.sampled_from(TOKEN_URLS),
    params=st.dictionaries(hostile.text, hostile.text, max_size=4),
)
def test_any_query_string_is_answered_without_500_or_reflection(accounts, url, params):
    before = hostile.snapshot()
    response = Client().get(url, params)
    hostile.assert_no_server_error(response)
    assert response.status_code in TOKEN_STATUSES
    hostile.assert_not_reflected(response, *params.keys(), *params.values())
    hostile.assert_headers_clean(response)
    assert hostile.snapshot() == before


@FUZZ
@given(url=st.sampled_from(TOKEN_URLS), raw=st.text(max_size=200))
def test_raw_undecodable_query_strings_are_harmless(accounts, url, raw):
    # Percent-escapes of invalid UTF-8, lone '%', '&&==', anything a client can put on the wire.
    query = quote(raw, safe="%&=+;,/?:@") + "&const=%ff%fe&x=%"
    response = Client().get(f"{url}?{query}")
    hostile.assert_no_server_error(response)
    assert response.status_code in TOKEN_STATUSES


@pytest.mark.parametrize(
    "query", ["const=%ff", "const=%E2%80%A8", "const=a%00b", "const=<x>", "const=" + "a" * 10000]
)
def test_js_refuses_undecodable_or_huge_const_without_reflection(accounts, query):
    response = Client().get(f"/token/acme.js?{query}")
    assert response.status_code == 400
    body = response.content.decode()
    assert "<x>" not in body and "a" * 100 not in body and TOKEN not in body


@FUZZ
@given(url=st.sampled_from(TOKEN_URLS), headers=hostile.client_headers)
def test_any_headers_are_answered_without_500_or_reflection(accounts, url, headers):
    response, allowed = hostile.get_as_client(url, headers)
    hostile.assert_no_server_error(response)
    assert response.status_code in TOKEN_STATUSES
    hostile.assert_headers_clean(response)
    hostile.assert_not_reflected(response, *hostile.header_values(headers))
    hostile.assert_cors_only_for_listed(response, headers["origin"], listed=allowed)


@pytest.mark.parametrize(
    "host", ["evil.example", "127.0.0.1:8000<script>", "a" * 300, "[::1", "localhost\\@evil"]
)
def test_a_forged_host_header_is_refused_with_400(accounts, host):
    """Also on the feed URLs, whose answers carry URLs built from the host."""
    for url in ["/token/acme.json", *FEED_URLS]:
        response = Client().get(url, HTTP_HOST=host)
        assert response.status_code == 400, url
        assert TOKEN not in response.content.decode()
        hostile.assert_not_reflected(response, host)


@FUZZ
@given(
    url=st.sampled_from(TOKEN_URLS),
    method=st.sampled_from(["post", "put", "patch", "delete"]),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
        ]
    ),
)
def test_writes_to_a_token_url_are_405_and_change_nothing(
    accounts, url, method, body, content_type
):
    before = hostile.snapshot()
    response = getattr(Client(), method)(url, data=body, content_type=content_type)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert TOKEN not in response.content.decode(errors="replace")
    assert hostile.snapshot() == before


def test_preflight_from_a_hostile_origin_grants_nothing_when_restricted(accounts, settings):
    settings.ALLOWED_DOMAINS = "shop.example.com"
    response = Client().options(
        "/token/acme.json",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response


def test_a_site_outside_allowed_domains_gets_no_token_from_the_js_snippet(accounts, settings):
    settings.ALLOWED_DOMAINS = "shop.example.com"
    for header in ("HTTP_REFERER", "HTTP_ORIGIN"):
        extra: dict[str, Any] = {header: "https://evil.example/page"}
        response = Client().get("/token/acme.js", **extra)
        assert response.status_code == 403
        assert TOKEN not in response.content.decode()


def test_token_responses_forbid_content_sniffing(accounts):
    for url in TOKEN_URLS:
        response = Client().get(url)
        assert response["X-Content-Type-Options"] == "nosniff", url


def test_an_unusable_token_is_never_served_whatever_the_request(accounts):
    for suffix in ("", ".json", ".js", ".txt"):
        response = Client().get(f"/token/gone{suffix}", {"const": "X"})
        assert response.status_code in (200, 503)
        assert "IGAA" not in response.content.decode()


def _flood_unknown_names(count: int = 1000) -> None:
    client = Client()
    for i in range(count):
        suffix = ("", ".json", ".js", ".txt")[i % 4]
        response = client.get(f"/token/nobody-{i}{suffix}", HTTP_REFERER="https://x.example/")
        assert response.status_code == 404
        assert TOKEN not in response.content.decode()


def test_a_flood_of_unknown_names_adds_no_cache_entries(accounts, settings, tmp_path):
    """Public requests never create unbounded state: an unknown name is answered
    from the cached set of known names and stores nothing (on the file cache a
    one-machine install uses, where 300 entries make it cull at random)."""
    settings.CACHES = hostile.production_caches(tmp_path)
    for url in TOKEN_URLS:  # the known accounts' entries
        Client().get(url)
    Client().get("/token/gone.json")
    before = hostile.cache_entries()
    _flood_unknown_names()
    assert hostile.cache_entries() == before
    assert Client().get("/token/acme.json").json()["token"] == TOKEN


@pytest.mark.redis
def test_a_flood_of_unknown_names_adds_no_keys_to_the_real_redis(accounts, settings, tmp_path):
    """On Redis, keys would share the instance's maxmemory with the rate-limit
    counters and the broker: a flood must add none."""
    hostile.assert_a_flood_adds_no_redis_keys(
        settings, tmp_path, warm="/token/acme.json", flood=_flood_unknown_names
    )
