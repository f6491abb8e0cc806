"""The feed's scripts and pictures: ``/feed/<account>.js`` and ``/feed.js`` (the
Instafeed.js adapter, exactly as docs/embed.md says), ``/feed/embed.js`` and
``/feed/embed.css`` (the files unchanged) and the content-addressed pictures under
``/feed/img/``."""

import gzip
import hashlib
import re
from pathlib import Path

import pytest
from django.db import OperationalError

from accounts.models import FeedImage, FeedSnapshot
from accounts.selectors import feed as feed_selectors
from accounts.services.feed import feed_delete
from tests.factories import make_account
from tests.feed_support import synced

pytestmark = pytest.mark.usefixtures("fresh_cache")

STATIC = Path(__file__).resolve().parents[2] / "accounts/static/accounts/feed"
ADAPTER = (STATIC / "adapter.js").read_text()
JAVASCRIPT = "text/javascript; charset=utf-8"


def header(name: str, media: str) -> str:
    """The line docs/embed.md prescribes before adapter.js."""
    return (
        "(window.__tokenagentFeeds = window.__tokenagentFeeds || []).push("
        f'{{"name": "{name}", "media": "{media}"}});\n'
    )


def split(body: bytes) -> tuple[str, str]:
    first, _, rest = body.decode().partition("\n")
    return first + "\n", rest


# --- /feed/<account>.js ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_adapter_is_one_line_then_adapter_js_unchanged(client):
    make_account(slug="acme")
    response = client.get("/feed/acme.js", HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 200
    assert response["Content-Type"] == JAVASCRIPT
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "public, max-age=300"
    line, rest = split(response.content)
    assert line == header("InstagramToken", "http://testserver/feed/acme/media")
    assert rest == ADAPTER
    # No secret in it and no CORS needed: the feed request it makes is where the site is checked.
    assert "Access-Control-Allow-Origin" not in response
    assert response["Vary"] == "Accept-Encoding"  # gzipped for browsers that ask
    tag = response["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{24}"', tag)
    again = client.get("/feed/acme.js", HTTP_IF_NONE_MATCH=tag)
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.django_db
def test_the_adapter_names_its_global_as_the_token_snippet_does(client, settings):
    make_account(slug="acme")
    line, _ = split(client.get("/feed/acme.js", {"const": "ShopFeed"}).content)
    assert line == header("ShopFeed", "http://testserver/feed/acme/media")
    settings.JS_CONSTANT_NAME = "IgFeed"
    line, _ = split(client.get("/feed/acme.js").content)
    assert line == header("IgFeed", "http://testserver/feed/acme/media")
    tags = {
        client.get("/feed/acme.js")["ETag"],
        client.get("/feed/acme.js", {"const": "Other"})["ETag"],
        client.get("/feed/acme.js", HTTP_X_FORWARDED_PROTO="https")["ETag"],
    }
    assert len(tags) == 3  # the body depends on the host, the account and the name


@pytest.mark.django_db
@pytest.mark.parametrize("const", ["1abc", "a-b", "window", "location", "</script>", "x" * 65, ""])
def test_a_refused_const_is_a_400_that_only_logs(client, const):
    make_account(slug="acme")
    response = client.get("/feed/acme.js", {"const": const})
    assert response.status_code == 400
    assert response["Content-Type"] == JAVASCRIPT
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    assert body.startswith('console.error("tokenagent: ?const= refused')
    assert "window[" not in body
    if len(const) > 3:
        assert const not in body


@pytest.mark.django_db
def test_an_unusable_js_constant_name_is_a_500_in_javascript(client, settings):
    make_account(slug="acme")
    settings.JS_CONSTANT_NAME = "not valid"
    response = client.get("/feed/acme.js")
    assert response.status_code == 500
    assert "JS_CONSTANT_NAME" in response.content.decode()


@pytest.mark.django_db
def test_the_media_url_follows_the_browsers_address_https_behind_the_proxy(client):
    make_account(slug="acme")
    behind_proxy = {"HTTP_HOST": "testserver", "HTTP_X_FORWARDED_PROTO": "https"}
    line, _ = split(client.get("/feed/acme.js", **behind_proxy).content)
    assert line == header("InstagramToken", "https://testserver/feed/acme/media")


@pytest.mark.django_db
def test_an_unknown_account_gets_a_404_script_that_sets_nothing(client):
    make_account(slug="acme")
    for url in ("/feed/nobody.js", "/feed/" + "x" * 65 + ".js"):
        response = client.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == JAVASCRIPT
        assert response["Cache-Control"] == "no-store"
        body = response.content.decode()
        assert body == (
            'console.error("tokenagent: No account with this name is connected to the '
            'agent. Nothing was set.");\n'
        )
        assert "window[" not in body and "__tokenagentFeeds" not in body


@pytest.mark.django_db
def test_feed_js_serves_the_default_accounts_adapter(client, django_capture_on_commit_callbacks):
    response = client.get("/feed.js")
    assert response.status_code == 404
    assert "No Instagram account is connected to the agent yet." in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        make_account(slug="acme")
    line, rest = split(client.get("/feed.js").content)
    assert line == header("InstagramToken", "http://testserver/feed/media")
    assert rest == ADAPTER


@pytest.mark.django_db
def test_the_adapter_ignores_allowed_domains_and_referers(client, settings):
    """It holds no secret; the site is checked by its feed request (CORS)."""
    settings.ALLOWED_DOMAINS = "shop.example"
    make_account(slug="acme", allowed_domains="shop.example")
    for headers in ({}, {"HTTP_REFERER": "https://evil.example/"}, {"HTTP_ORIGIN": "null"}):
        response = client.get("/feed/acme.js", **headers)
        assert response.status_code == 200
        assert response["Cache-Control"] == "public, max-age=300"


@pytest.mark.django_db
def test_a_feed_only_accounts_adapter_is_served(client):
    make_account(slug="acme", feed_only=True)
    assert client.get("/feed/acme.js").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/feed/acme.js", "/feed.js", "/feed/embed.js", "/feed/embed.css"])
def test_scripts_answer_the_preflight_and_refuse_writes(client, url):
    make_account(slug="acme")
    preflight = client.options(
        url, HTTP_ORIGIN="https://shop.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert preflight.status_code == 204
    assert preflight["Allow"] == "GET, HEAD, OPTIONS"
    assert client.head(url).status_code == 200
    for method in (client.post, client.put, client.delete):
        response = method(url)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD, OPTIONS"


# --- /feed/embed.js, /feed/embed.css -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "name", "content_type"),
    [
        ("/feed/embed.js", "embed.js", JAVASCRIPT),
        ("/feed/embed.css", "embed.css", "text/css; charset=utf-8"),
    ],
)
def test_the_embed_files_are_served_unchanged(client, url, name, content_type):
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == (STATIC / name).read_bytes()
    assert response["Content-Type"] == content_type
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "public, max-age=3600"
    tag = response["ETag"]
    assert client.get(url, HTTP_IF_NONE_MATCH=tag).status_code == 304
    zipped = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert gzip.decompress(zipped.content) == response.content
    # Query strings (cache busters, junk) change nothing.
    busted = client.get(url, {"v": "2", "x": "<script>"})
    assert (busted.content, busted["ETag"]) == (response.content, tag)


@pytest.mark.django_db
def test_embed_is_not_an_account(client):
    """``/feed/embed.js`` is the embed even when no account exists: its route comes
    before ``/feed/<account>.js`` (and the name is reserved)."""
    assert client.get("/feed/embed.js").status_code == 200
    assert client.get("/feed/embed.json").status_code == 404


# --- Pictures -----------------------------------------------------------------------------------


@pytest.fixture
def picture(feed_sandbox):
    """A rendition mirrored by a real sync: (account, its URL path, its row)."""
    account, _ = synced(feed_sandbox, slug="acme", username="acme_bakery", posts=1)
    post = FeedSnapshot.objects.get(account=account).posts[0]
    size = post["image"]["sizes"][0]
    path = f"/feed/img/{size['sha256']}-{size['width']}.jpg"
    return account, path, FeedImage.objects.get(sha256=size["sha256"])


def counts() -> tuple[int, int]:
    return FeedImage.objects.count(), FeedSnapshot.objects.count()


@pytest.mark.django_db(transaction=True)
def test_a_picture_is_immutable_with_its_hash_as_etag(client, picture):
    _, path, image = picture
    response = client.get(path, HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["ETag"] == f'"{image.sha256}"'
    assert hashlib.sha256(response.content).hexdigest() == image.sha256
    assert int(response["Content-Length"]) == image.size
    assert client.head(path).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_revalidation_is_a_304_without_reading_anything(
    client, picture, django_assert_num_queries
):
    _, path, image = picture
    with django_assert_num_queries(0):
        response = client.get(path, HTTP_IF_NONE_MATCH=f'"{image.sha256}"')
    assert (response.status_code, response.content) == (304, b"")
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(path, HTTP_IF_NONE_MATCH='"0000"').status_code == 200


@pytest.mark.django_db(transaction=True)
def test_unknown_and_malformed_names_are_404_and_write_nothing(
    client, picture, django_assert_num_queries
):
    _, path, image = picture
    before = counts()
    malformed = [
        f"/feed/img/{image.sha256}.jpg",
        f"/feed/img/{image.sha256}-0.jpg",
        f"/feed/img/{image.sha256}-320.png",
        f"/feed/img/{image.sha256.upper()}-320.jpg",
        f"/feed/img/{image.sha256[:-1]}-320.jpg",
        "/feed/img/%3Cscript%3E.jpg",
        "/feed/img/" + "a" * 5000,
    ]
    with django_assert_num_queries(0):
        for url in malformed:
            response = client.get(url)
            assert response.status_code == 404, url
            assert response["Cache-Control"] == "no-store"
        # Not even a picture's route.
        assert client.get("/feed/img/..%2F..%2Fsettings.py").status_code == 404
    for url in (
        f"/feed/img/{'0' * 64}-320.jpg",  # no such picture
        f"/feed/img/{image.sha256}-{image.width + 1}.jpg",  # not its width
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "No such picture on this agent."}
    assert counts() == before


@pytest.mark.django_db(transaction=True)
def test_a_deleted_feeds_pictures_stop_being_served(client, picture):
    account, path, _ = picture
    assert client.get(path).status_code == 200
    feed_delete(account=account)
    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_a_database_outage_is_a_503_for_pictures(client, monkeypatch):
    def down(name):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(feed_selectors, "feed_image_get", down)
    response = client.get(f"/feed/img/{'a' * 64}-320.jpg")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
