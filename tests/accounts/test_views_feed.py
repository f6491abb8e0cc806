"""The public feed URLs ``/feed/<account>.json``, ``/feed.json``, ``/feed/<account>/media``
and ``/feed/media``: status, headers, bodies, ``?limit``/``?after``, ETag/304,
Cache-Control bounded by the next sync, CORS and ALLOWED_DOMAINS, the cache (no query
when warm, invalidated by a sync at once), stale snapshots, accounts with no feed
yet, unknown accounts. (Their preflight is tested beside the token URLs',
test_views_public.py.)

Feeds are read by the real feed_sync from the sandbox Instagram on the live server
(tests/feed_support.py)."""

import gzip
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import OperationalError
from django.utils import timezone

from accounts.models import FeedSnapshot, InstagramAccount
from accounts.selectors import served_feed as served_feed_module
from accounts.services.feed import Outcome, feed_sync
from tests.factories import make_account
from tests.feed_support import MARKUP_CAPTION, POSTS, connect, synced

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_cache")]

AGENT = "http://testserver"
IMAGE_URL = re.compile(rf"{AGENT}/feed/img/[0-9a-f]{{64}}-[0-9]+\.jpg")
FEED_URLS = ["/feed/acme.json", "/feed.json", "/feed/acme/media", "/feed/media"]


@pytest.fixture
def acme(feed_sandbox):
    account, token = synced(feed_sandbox, slug="acme", username="acme_bakery")
    account.token = token  # type: ignore[attr-defined]  # the string no feed answer may contain
    return account


def assert_image_served(client, url: str, width: int, height: int) -> None:
    assert IMAGE_URL.fullmatch(url), url
    response = client.get(url.removeprefix(AGENT))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    assert url.endswith(f"-{width}.jpg")
    assert height > 0


# --- /feed/<account>.json -----------------------------------------------------------------------


def test_the_json_is_the_contracts_shape_with_every_picture_on_the_agent(client, acme):
    response = client.get("/feed/acme.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Vary"] == "Origin, Accept-Encoding"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.json()
    assert set(body) == {"account", "username", "updated_at", "stale", "posts"}
    assert (body["account"], body["username"], body["stale"]) == ("acme", "acme_bakery", False)
    synced_at = FeedSnapshot.objects.get(account=acme).synced_at
    assert synced_at is not None
    assert body["updated_at"] == synced_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    posts = body["posts"]
    assert len(posts) == POSTS
    assert [p["media_type"] for p in posts] == [
        "IMAGE",
        "VIDEO",
        "CAROUSEL_ALBUM",
        "IMAGE",
        "IMAGE",
        "VIDEO",
    ]
    for post in posts:
        assert {"id", "media_type", "permalink", "timestamp", "image"} <= set(post)
        assert post["permalink"].startswith("https://www.instagram.com/")
        image = post["image"]
        widths = [s["width"] for s in image["sizes"]]
        assert widths == sorted(widths)
        assert (image["url"], image["width"], image["height"]) == tuple(
            image["sizes"][-1][k] for k in ("url", "width", "height")
        )
        for size in image["sizes"]:
            assert_image_served(client, size["url"], size["width"], size["height"])
    assert posts[0]["image"]["height"] == 1350  # a portrait keeps its shape
    assert posts[1]["video_url"].startswith(feed_sandbox_url(acme))
    assert "video_url" not in posts[5]  # Instagram withheld it (licensed audio)
    children = posts[2]["children"]
    assert [c["media_type"] for c in children] == ["IMAGE", "IMAGE", "VIDEO"]
    assert "video_url" in children[2]
    # The caption as typed: JSON is data, the scripts render it as text.
    assert posts[3]["caption"].endswith(MARKUP_CAPTION)
    assert "caption" not in posts[4]
    assert acme.token not in response.content.decode()


def feed_sandbox_url(account) -> str:
    """Where the sandbox serves its CDN (the live server): a video's URL stays Instagram's."""
    from django.conf import settings

    return settings.INSTAGRAM_GRAPH_URL.split("/sandbox")[0]


def test_feed_json_is_the_default_accounts_feed(client, acme, feed_sandbox):
    synced(feed_sandbox, slug="other", username="other_bakery", posts=2)
    assert client.get("/feed.json").content == client.get("/feed/acme.json").content
    InstagramAccount.objects.filter(slug="acme").update(is_default=False)
    other = InstagramAccount.objects.get(slug="other")
    other.is_default = True
    other.save()
    assert client.get("/feed.json").json()["account"] == "other"


def test_limit_trims_the_posts(client, acme):
    everything = client.get("/feed/acme.json").json()["posts"]
    for limit, count in [("1", 1), ("3", 3), ("06", 6), ("6", 6), ("999999", 6)]:
        posts = client.get("/feed/acme.json", {"limit": limit}).json()["posts"]
        assert posts == everything[:count], limit


def test_limit_is_capped_at_feed_max_posts(client, acme, settings):
    settings.FEED_MAX_POSTS = 2
    assert len(client.get("/feed/acme.json").json()["posts"]) == 2
    assert len(client.get("/feed/acme.json", {"limit": "5"}).json()["posts"]) == 2


BAD_LIMITS = ["0", "-1", "abc", "1.5", "", " 2", "2 ", "+2", "1e3", "9999999", "٣", "<b>x</b>"]


@pytest.mark.parametrize("url", ["/feed/acme.json", "/feed/acme/media", "/feed.json"])
def test_a_bad_limit_is_a_400_json_error_never_echoing_it(client, url):
    make_account(slug="acme")  # checked before the feed is even looked at
    for limit in BAD_LIMITS:
        response = client.get(url, {"limit": limit}, HTTP_ORIGIN="https://shop.example")
        assert response.status_code == 400, limit
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert body["error"] == "bad_request"
        assert "limit must be a positive whole number" in body["detail"]
        if len(limit) > 2:
            assert limit not in response.content.decode()
        # Readable by the page, so that the embed can say why.
        assert response["Access-Control-Allow-Origin"] == "https://shop.example"


def test_browsers_that_ask_get_it_gzipped(client, acme):
    plain = client.get("/feed/acme.json")
    zipped = client.get("/feed/acme.json", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) * 3 < len(plain.content)
    assert zipped["ETag"] == f"W/{plain['ETag']}"  # the same tag, weak once encoded
    again = client.get("/feed/acme.json", HTTP_IF_NONE_MATCH=zipped["ETag"])
    assert again.status_code == 304
    assert again["Vary"] == "Origin, Accept-Encoding"


def test_other_query_parameters_are_ignored(client, acme):
    plain = client.get("/feed/acme.json")
    busted = client.get("/feed/acme.json", {"v": "2", "_": "123", "const": "<x>", "after": "!"})
    assert busted.status_code == 200
    assert busted.content == plain.content
    assert busted["ETag"] == plain["ETag"]


# --- /feed/<account>/media: the Graph shape --------------------------------------------------


def test_media_is_the_graph_shape_with_pictures_on_the_agent(client, acme):
    response = client.get("/feed/acme/media")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    data = body["data"]
    assert len(data) == POSTS
    assert "next" not in body["paging"]  # one page holds them all
    feed = client.get("/feed/acme.json").json()["posts"]
    for item, post in zip(data, feed, strict=True):
        assert item["id"] == post["id"]
        assert item["media_type"] == post["media_type"]
        assert item["permalink"] == post["permalink"]
        assert item["username"] == "acme_bakery"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", item["timestamp"])
        assert item.get("caption") == post.get("caption")
        if item["media_type"] == "VIDEO":
            assert item["thumbnail_url"] == post["image"]["url"]
            assert item.get("media_url") == post.get("video_url")
        else:
            assert item["media_url"] == post["image"]["url"]
            assert IMAGE_URL.fullmatch(item["media_url"])
    album = data[2]["children"]["data"]
    assert [c["media_type"] for c in album] == ["IMAGE", "IMAGE", "VIDEO"]
    assert IMAGE_URL.fullmatch(album[0]["media_url"])
    assert IMAGE_URL.fullmatch(album[2]["thumbnail_url"])
    text = response.content.decode()
    assert acme.token not in text
    assert "access_token" not in text


def test_media_pages_follow_next_on_the_agent_without_a_token(client, acme):
    seen, url, pages = [], "/feed/acme/media?limit=4", 0
    while url:
        body = client.get(url).json()
        pages += 1
        seen += [item["id"] for item in body["data"]]
        following = body["paging"].get("next")
        if following:
            parts = urlsplit(following)
            assert f"{parts.scheme}://{parts.netloc}" == AGENT
            assert parts.path == "/feed/acme/media"
            assert set(parse_qs(parts.query)) == {"limit", "after"}
            url = following.removeprefix(AGENT)
        else:
            url = ""
    assert pages == 2
    assert seen == [p["id"] for p in client.get("/feed/acme.json").json()["posts"]]


def test_media_default_page_is_25_and_the_default_account_has_its_own_url(client, feed_sandbox):
    feed_sandbox.feed(username="big_bakery", count=0)
    for n in range(27):  # small pictures: one rendition each, a quick sync
        feed_sandbox.add_post(username="big_bakery", caption=f"post {n}", width=320, height=320)
    account, _ = connect(feed_sandbox, slug="big", username="big_bakery")
    assert feed_sync(account=account).posts == 27
    body = client.get("/feed/media").json()
    assert len(body["data"]) == 25
    assert body["paging"]["next"].startswith(f"{AGENT}/feed/media?limit=25&after=")
    assert len(client.get(body["paging"]["next"].removeprefix(AGENT)).json()["data"]) == 2


def test_a_malformed_cursor_is_a_400(client):
    make_account(slug="acme")
    for after in ["", "a b", "x" * 65, "1;DROP", "../", "%00", '"><i>']:
        response = client.get("/feed/acme/media", {"after": after})
        assert response.status_code == 400, after
        assert response.json()["error"] == "bad_request"
        assert "cursor" in response.json()["detail"]


def test_an_unknown_cursor_is_an_empty_last_page(client, acme):
    """A post deleted between two pages ends the paging rather than failing it."""
    body = client.get("/feed/acme/media", {"after": "17000000000000000"}).json()
    assert body == {"data": []}


# --- ETag, 304, Cache-Control ----------------------------------------------------------------


def test_etag_and_304(client, acme):
    for url in FEED_URLS:
        response = client.get(url)
        tag = response["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{24}-[0-9a-f]{12}"', tag)
        for sent in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
            again = client.get(url, HTTP_IF_NONE_MATCH=sent)
            assert again.status_code == 304, (url, sent)
            assert again.content == b""
            assert again["ETag"] == tag
            assert again["Cache-Control"] == response["Cache-Control"]
            assert again["Vary"] == "Origin, Accept-Encoding"
        assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_the_etag_differs_per_body(client, acme):
    tags = {
        client.get("/feed/acme.json")["ETag"],
        client.get("/feed/acme.json", {"limit": "2"})["ETag"],
        client.get("/feed/acme/media")["ETag"],
        client.get("/feed/acme/media", {"limit": "2"})["ETag"],
        client.get("/feed/acme.json", HTTP_X_FORWARDED_PROTO="https")["ETag"],
        client.get("/feed.json")["ETag"],
    }
    assert len(tags) == 6


def test_cache_control_lasts_until_the_next_sync(client, acme, settings):
    settings.FEED_SYNC_SECONDS = 600
    max_age = int(client.get("/feed/acme.json")["Cache-Control"].split("max-age=")[1])
    assert 540 < max_age <= 600
    assert client.get("/feed/acme.json")["Cache-Control"].startswith("public, ")


def test_a_feed_whose_sync_is_overdue_is_cached_a_minute_and_stale(client, acme, settings):
    settings.FEED_SYNC_SECONDS = 600
    snapshot = FeedSnapshot.objects.get(account=acme)
    snapshot.synced_at = timezone.now() - timedelta(seconds=1300)
    snapshot.save()  # the receiver drops the served copy
    response = client.get("/feed/acme.json")
    assert response["Cache-Control"] == "public, max-age=60"
    assert response.json()["stale"] is True


# --- CORS and ALLOWED_DOMAINS ---------------------------------------------------------------


def test_any_site_may_read_the_feed_while_allowed_domains_is_unset(client, acme):
    for url in FEED_URLS:
        response = client.get(url, HTTP_ORIGIN="https://any.example")
        assert response["Access-Control-Allow-Origin"] == "https://any.example"
        assert response["Access-Control-Expose-Headers"] == "ETag"
        assert response["Vary"] == "Origin, Accept-Encoding"
        assert response["Cache-Control"].startswith("public, max-age=")


def test_once_listed_only_listed_sites_may_read_it_and_answers_are_private(client, acme, settings):
    settings.ALLOWED_DOMAINS = "shop.example www.shop.example"
    for url in FEED_URLS:
        listed = client.get(url, HTTP_ORIGIN="https://www.shop.example")
        assert listed["Access-Control-Allow-Origin"] == "https://www.shop.example"
        assert listed["Cache-Control"].startswith("private, max-age=")
        unlisted = client.get(url, HTTP_ORIGIN="https://evil.example")
        assert unlisted.status_code == 200
        assert "Access-Control-Allow-Origin" not in unlisted
        assert unlisted["Cache-Control"].startswith("private, max-age=")
        assert unlisted["Vary"] == "Origin, Accept-Encoding"
        assert "Access-Control-Allow-Origin" not in client.get(url, HTTP_ORIGIN="null")


def test_an_accounts_own_list_narrows_the_global_one(client, feed_sandbox, settings):
    settings.ALLOWED_DOMAINS = "shop.example blog.example"
    synced(
        feed_sandbox,
        slug="narrow",
        username="narrow_bakery",
        posts=1,
        allowed_domains="blog.example",
    )
    assert "Access-Control-Allow-Origin" not in client.get(
        "/feed/narrow.json", HTTP_ORIGIN="https://shop.example"
    )
    ok = client.get("/feed/narrow/media", HTTP_ORIGIN="https://blog.example")
    assert ok["Access-Control-Allow-Origin"] == "https://blog.example"
    settings.ALLOWED_DOMAINS = ""
    alone = client.get("/feed/narrow.json", HTTP_ORIGIN="https://shop.example")
    assert "Access-Control-Allow-Origin" not in alone
    assert alone["Cache-Control"].startswith("private, ")


def test_head_and_writes(client, acme):
    for url in FEED_URLS:
        head = client.head(url)
        assert head.status_code == 200
        assert head["ETag"] == client.get(url)["ETag"]
        for method in (client.post, client.put, client.patch, client.delete):
            response = method(url)
            assert response.status_code == 405
            assert response["Allow"] == "GET, HEAD, OPTIONS"


# --- Unknown accounts, no feed yet, disconnected -------------------------------------------------


def test_an_unknown_account_is_404_json(client):
    make_account(slug="acme")
    for url in ["/feed/nobody.json", "/feed/nobody/media", "/feed/" + "x" * 65 + ".json"]:
        response = client.get(url, HTTP_ORIGIN="https://shop.example")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert response.json()["error"] == "unknown_account"
        assert response["Access-Control-Allow-Origin"] == "https://shop.example"


def test_no_account_at_all(client):
    for url in ("/feed.json", "/feed/media"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["error"] == "no_default_account"


def test_an_account_whose_feed_was_never_read_is_503_until_its_first_sync(client, feed_sandbox):
    """A site owner would rather keep the container's own content (a "Follow us"
    link) than show an empty grid during the minute after connecting: 503 +
    Retry-After, never cached. Once a snapshot exists it is always served."""
    account, _ = connect(feed_sandbox, slug="fresh", username="fresh_bakery")
    for url in ("/feed/fresh.json", "/feed/fresh/media"):
        response = client.get(url)
        assert response.status_code == 503
        assert response["Retry-After"] == "60"
        assert response["Cache-Control"] == "no-store"
        assert response.json()["error"] == "feed_not_ready"
        assert "not read this account's feed" in response.json()["detail"]
    feed_sandbox.mode("media", "http500")
    assert feed_sync(account=account).outcome == Outcome.FAILED
    assert client.get("/feed/fresh.json").status_code == 503  # a failed first sync
    feed_sandbox.mode("media", None)
    assert feed_sync(account=account).outcome == Outcome.SYNCED
    assert client.get("/feed/fresh.json").status_code == 200


def test_a_disconnected_account_serves_no_feed(client, acme):
    acme.status = InstagramAccount.Status.DISCONNECTED
    acme.save()
    response = client.get("/feed/acme.json")
    assert response.status_code == 503
    assert response.json()["error"] == "disconnected"


# --- Stale, and a sync seen at once ------------------------------------------------------------


@pytest.mark.parametrize("failure", ["http500", "rate_limit", "slow:1", "bad_json", "error190"])
def test_a_failed_sync_keeps_the_snapshot_served_as_stale_at_once(
    client, acme, feed_sandbox, settings, failure
):
    settings.INSTAGRAM_READ_TIMEOUT = 0.3
    before = client.get("/feed/acme.json")  # warms the cache
    assert before.json()["stale"] is False
    feed_sandbox.fail("media", [failure])
    assert feed_sync(account=acme).outcome == Outcome.FAILED
    after = client.get("/feed/acme.json")
    assert after.status_code == 200
    assert after.json()["stale"] is True
    assert after.json()["posts"] == before.json()["posts"]
    assert after["ETag"] != before["ETag"]
    assert client.get("/feed/acme.json", HTTP_IF_NONE_MATCH=before["ETag"]).status_code == 200


def test_an_account_needing_reconnection_keeps_its_feed_served_as_stale(client, acme):
    assert client.get("/feed/acme/media").status_code == 200
    acme.status = InstagramAccount.Status.NEEDS_RECONNECT
    acme.save()
    response = client.get("/feed/acme.json")
    assert response.status_code == 200
    assert response.json()["stale"] is True
    assert len(response.json()["posts"]) == POSTS
    assert client.get("/feed/acme/media").status_code == 200


def test_a_sync_swaps_the_served_feed_at_once(client, acme, feed_sandbox):
    old = client.get("/feed/acme.json")
    new = feed_sandbox.add_post(username="acme_bakery", caption="A new loaf")
    assert feed_sync(account=acme).outcome == Outcome.SYNCED
    response = client.get("/feed/acme.json", HTTP_IF_NONE_MATCH=old["ETag"])
    assert response.status_code == 200
    posts = response.json()["posts"]
    assert posts[0]["id"] == new["id"]
    assert posts[0]["caption"] == "A new loaf"
    assert client.get("/feed/acme/media").json()["data"][0]["id"] == new["id"]


def test_a_warm_feed_is_served_without_a_database_query(client, acme, django_assert_num_queries):
    urls = [*FEED_URLS, "/feed/acme/media?limit=2", "/feed/nobody.json"]
    tags = {url: client.get(url).get("ETag") for url in urls}
    with django_assert_num_queries(0):
        for url in urls:
            response = client.get(url)
            assert response.status_code in (200, 404)
            if tags[url]:
                assert client.get(url, HTTP_IF_NONE_MATCH=tags[url]).status_code == 304


def test_a_body_is_rendered_once_per_process_and_tag(client, acme, monkeypatch):
    from accounts import feed_serving_policy

    renders = []
    real = feed_serving_policy.feed_payload

    def counted(**kw):
        renders.append(1)
        return real(**kw)

    monkeypatch.setattr(feed_serving_policy, "feed_payload", counted)
    monkeypatch.setattr(feed_serving_policy, "_BODIES", {})
    first = client.get("/feed/acme.json", {"limit": "3"})
    assert client.get("/feed/acme.json", {"limit": "3"}).content == first.content
    assert len(renders) == 1
    client.get("/feed/acme.json", {"limit": "4"})
    assert len(renders) == 2
    monkeypatch.setattr(feed_serving_policy, "BODIES_MAX", 2)
    for limit in ("1", "2", "5", "6"):  # bounded: emptied when full, never wrong
        assert len(client.get("/feed/acme.json", {"limit": limit}).json()["posts"]) == int(limit)
    assert len(feed_serving_policy._BODIES) <= 2


def test_a_cold_cache_during_a_database_outage_is_a_503_never_a_500(client, monkeypatch):
    def down(slug):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(served_feed_module, "build_feed_entry", down)
    make_account(slug="acme")
    for url in FEED_URLS:
        response = client.get(url)
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert response.json()["error"] == "unavailable"


def test_no_feed_answer_ever_carries_the_token(client, acme):
    for url in [*FEED_URLS, "/feed/acme.js", "/feed.js", "/feed/embed.js"]:
        response = client.get(url)
        assert response.status_code == 200
        assert acme.token not in response.content.decode(), url
        assert acme.token not in json.dumps(dict(response.items())), url
