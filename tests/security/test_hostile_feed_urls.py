"""Hostile input on the public feed URLs (served_urls.FEED_URLS and the mirrored
pictures): odd account and picture names, query strings, headers and methods. None
answers 500, none reflects input unescaped, none serves a token, none grants a
listed site's CORS to another, none changes what is stored, and a flood of unknown
names adds no cache entries.

The feed is read by the real feed_sync from the sandbox on the live server."""

from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import FeedImage, FeedImageUse, FeedSnapshot
from tests.feed_support import synced
from tests.security import hostile
from tests.served_urls import FEED_URLS

# Served, not modified, refused (bad limit or cursor, bad ?const=), unknown, wrong method.
FEED_STATUSES = {200, 204, 304, 400, 404, 405}
FUZZ = hostile.fuzz(max_examples=80)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def feed(private_cache, feed_sandbox):
    """acme (the default) with a mirrored feed; returns its token and every feed URL
    including one picture's."""
    account, token = synced(feed_sandbox, slug="acme", username="acme_bakery", posts=2)
    account.is_default = True
    account.save()
    size = FeedSnapshot.objects.get(account=account).posts[0]["image"]["sizes"][0]
    picture = f"/feed/img/{size['sha256']}-{size['width']}.jpg"
    return token, [*FEED_URLS, picture]


def stored() -> dict:
    """Everything an unauthorised request must leave untouched, the feed included."""
    return {
        **hostile.snapshot(),
        "snapshots": sorted(
            FeedSnapshot.objects.values_list("pk", "synced_at", "last_error_at", "changed_at")
        ),
        "images": FeedImage.objects.count(),
        "uses": FeedImageUse.objects.count(),
    }


def assert_harmless(response, token: str, *values: str) -> None:
    hostile.assert_no_server_error(response)
    assert response.status_code in FEED_STATUSES, response.status_code
    hostile.assert_headers_clean(response)
    hostile.assert_not_reflected(response, *values)
    assert token not in response.content.decode(errors="replace")


@FUZZ
@given(name=hostile.text, suffix=st.sampled_from([".json", ".js", "/media", "", "/media/", ".txt"]))
def test_any_account_name_is_answered_without_500_or_reflection(feed, name, suffix):
    token, _ = feed
    before = stored()
    response = Client().get(f"/feed/{quote(name, safe='')}{suffix}")
    assert_harmless(response, token, name)
    assert stored() == before


@FUZZ
@given(name=st.one_of(hostile.text, st.from_regex(r"[0-9a-f]{60,70}-[0-9]{1,6}\.(jpg|png)")))
def test_any_picture_name_is_answered_without_500_or_a_write(feed, name):
    token, _ = feed
    before = stored()
    response = Client().get(f"/feed/img/{quote(name, safe='')}")
    assert_harmless(response, token, name)
    assert response.status_code in (200, 404)
    assert stored() == before


@FUZZ
@given(
    index=st.integers(min_value=0, max_value=len(FEED_URLS)),
    params=st.dictionaries(
        st.one_of(st.sampled_from(["limit", "after", "const", "callback"]), hostile.text),
        hostile.text,
        max_size=4,
    ),
)
def test_any_query_string_is_answered_without_500_or_reflection(feed, index, params):
    token, urls = feed
    before = stored()
    response = Client().get(urls[index], params)
    assert_harmless(response, token, *params.keys(), *params.values())
    assert stored() == before


@FUZZ
@given(index=st.integers(min_value=0, max_value=len(FEED_URLS)), raw=st.text(max_size=200))
def test_raw_undecodable_query_strings_are_harmless(feed, index, raw):
    token, urls = feed
    query = quote(raw, safe="%&=+;,/?:@") + "&limit=%ff%fe&after=%&const=%00"
    response = Client().get(f"{urls[index]}?{query}")
    assert_harmless(response, token)


@FUZZ
@given(index=st.integers(min_value=0, max_value=len(FEED_URLS)), headers=hostile.client_headers)
def test_any_headers_are_answered_without_500_or_reflection(feed, index, headers):
    token, urls = feed
    response, allowed = hostile.get_as_client(urls[index], headers)
    assert_harmless(response, token, *hostile.header_values(headers))
    hostile.assert_cors_only_for_listed(response, headers["origin"], listed=allowed)


@FUZZ
@given(
    index=st.integers(min_value=0, max_value=len(FEED_URLS)),
    method=st.sampled_from(["post", "put", "patch", "delete"]),
    body=st.binary(max_size=300),
)
def test_writes_to_a_feed_url_are_405_and_change_nothing(feed, index, method, body):
    token, urls = feed
    before = stored()
    response = getattr(Client(), method)(urls[index], data=body, content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert token not in response.content.decode(errors="replace")
    assert stored() == before


def test_feed_responses_forbid_content_sniffing(feed):
    _, urls = feed
    for url in urls:
        assert Client().get(url)["X-Content-Type-Options"] == "nosniff", url


def _flood_unknown_names(count: int = 1000) -> None:
    client = Client()
    for i in range(count):
        suffix = (".json", ".js", "/media")[i % 3]
        response = client.get(f"/feed/nobody-{i}{suffix}", HTTP_ORIGIN="https://x.example")
        assert response.status_code == 404
    for i in range(200):
        assert client.get(f"/feed/img/{i:064x}-320.jpg").status_code == 404


def test_a_flood_of_unknown_names_adds_no_cache_entries(feed, settings, tmp_path):
    """On the file cache a one-machine install uses (300 entries make it cull)."""
    token, urls = feed
    settings.CACHES = hostile.production_caches(tmp_path)
    for url in urls:  # the known account's entries
        Client().get(url)
    before = hostile.cache_entries()
    _flood_unknown_names()
    assert hostile.cache_entries() == before
    assert Client().get("/feed/acme.json").status_code == 200


@pytest.mark.redis
def test_a_flood_of_unknown_names_adds_no_keys_to_the_real_redis(feed, settings, tmp_path):
    hostile.assert_a_flood_adds_no_redis_keys(
        settings, tmp_path, warm="/feed/acme.json", flood=_flood_unknown_names
    )
