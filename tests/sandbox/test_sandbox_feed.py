"""The sandbox's feed (accounts/sandbox/catalog.py, cdn.py, media.py) against
docs/instagram.md section 6: every media type, field expansion, paging, the signed
and expiring CDN with real JPEG bytes, the control API that changes posts, and
the failure kinds meant for /me/media and the CDN. Through Django's test client."""

import io
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from PIL import Image

from accounts.sandbox import catalog, cdn, state, tokens
from tests.sandbox_control import control, relative

FIELDS = (
    "id,media_type,media_url,thumbnail_url,permalink,caption,timestamp,username,"
    "children{id,media_type,media_url,thumbnail_url}"
)
UID = tokens.user_id_for("acme_bakery")
pytestmark = pytest.mark.usefixtures("clean_sandbox")


@pytest.fixture
def token(client):
    return control(client, "mint", username="acme_bakery").json()["access_token"]


def media(client, token, path="/sandbox/v21.0/me/media", **params):
    return client.get(path, {"access_token": token, "fields": FIELDS, **params})


def fetch(client, url):
    return client.get(relative(url))


def picture(resp):
    img = Image.open(io.BytesIO(resp.content))
    img.load()
    return img


def posts(client, token, **params):
    resp = media(client, token, limit=100, **params)
    assert resp.status_code == 200
    return resp.json()["data"]


# --- the default feed -----------------------------------------------------------------------


def test_the_default_feed_has_every_media_type_shaped_like_instagram(client, token):
    items = posts(client, token)
    assert len(items) == catalog.DEFAULT_COUNT
    photo, video, carousel, markup, landscape, reel = items[:6]

    assert photo["media_type"] == "IMAGE"
    assert "thumbnail_url" not in photo
    assert photo["permalink"].startswith("https://www.instagram.com/p/")
    assert photo["caption"] == "Sandbox post 1 by @acme_bakery"
    assert photo["username"] == "acme_bakery"
    assert photo["timestamp"] == "2025-03-14T09:26:53+0000"

    assert video["media_type"] == "VIDEO"
    assert video["permalink"].startswith("https://www.instagram.com/reel/")
    assert urlsplit(video["thumbnail_url"]).path.endswith("_thumb.jpg")
    assert urlsplit(video["media_url"]).path.endswith("_v.mp4")

    assert carousel["media_type"] == "CAROUSEL_ALBUM"
    children = carousel["children"]["data"]
    assert [c["media_type"] for c in children] == ["IMAGE", "IMAGE", "VIDEO"]
    assert carousel["media_url"] == children[0]["media_url"]  # the first item's
    assert set(children[2]) == {"id", "media_type", "media_url", "thumbnail_url"}
    assert all("permalink" not in c and "caption" not in c for c in children)
    assert len({c["id"] for c in children} | {carousel["id"]}) == 4

    assert '"><img src=x onerror=alert(1)>' in markup["caption"]
    assert "<script>" in markup["caption"]  # verbatim: escaping is the agent's job
    assert "caption" not in landscape

    # A reel with licensed audio: Instagram withholds media_url, keeps the thumbnail.
    assert reel["media_type"] == "VIDEO"
    assert "media_url" not in reel and reel["thumbnail_url"]
    assert len({m["id"] for m in items}) == len(items)


def test_pictures_are_real_jpegs_of_their_sizes_deterministic_and_distinct(client, token):
    photo, video, carousel, _, landscape, _ = posts(client, token)[:6]
    children = carousel["children"]["data"]
    cases = [
        (photo["media_url"], (1080, 1350)),
        (video["thumbnail_url"], (640, 640)),
        (children[0]["media_url"], (1080, 1080)),
        (children[1]["media_url"], (1080, 1350)),
        (children[2]["thumbnail_url"], (640, 640)),
        (landscape["media_url"], (1080, 566)),
    ]
    bodies = []
    for url, size in cases:
        resp = fetch(client, url)
        assert resp.status_code == 200
        assert resp["Content-Type"] == "image/jpeg"
        img = picture(resp)
        assert (img.format, img.size) == ("JPEG", size)
        assert len(resp.content) < 200_000
        bodies.append(resp.content)
    assert len(set(bodies)) == len(bodies)
    assert fetch(client, cases[0][0]).content == bodies[0]
    again = posts(client, token)[0]["media_url"]  # a fresh signed URL, the same picture
    assert fetch(client, again).content == bodies[0]


def test_a_video_url_serves_a_placeholder_mp4(client, token):
    video = posts(client, token)[1]
    resp = fetch(client, video["media_url"])
    assert (resp.status_code, resp["Content-Type"]) == (200, "video/mp4")
    assert resp.content[4:8] == b"ftyp"


def test_media_count_follows_the_feed(client, token):
    control(client, "feed", username="acme_bakery", count=3)
    body = client.get("/sandbox/v21.0/me", {"access_token": token}).json()
    assert body["media_count"] == 3


# --- fields -----------------------------------------------------------------------------------


def test_only_the_fields_asked_for_come_back_plus_id(client, token):
    items = client.get(
        "/sandbox/v21.0/me/media", {"access_token": token, "fields": "media_type,caption"}
    ).json()["data"]
    assert set(items[0]) == {"id", "media_type", "caption"}
    assert set(items[4]) == {"id", "media_type"}  # no caption: the key is absent


def test_children_without_expansion_are_ids_only_and_only_on_carousels(client, token):
    items = client.get(
        "/sandbox/v21.0/me/media", {"access_token": token, "fields": "media_type,children"}
    ).json()["data"]
    assert items[2]["children"] == {
        "data": [{"id": c["id"]} for c in catalog.default_post("acme_bakery", 2)["children"]]
    }
    assert all("children" not in m for m in items if m["media_type"] != "CAROUSEL_ALBUM")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("id,like_count_typo", "nonexisting field (like_count_typo)"),
        ("children{id,permalink}", "nonexisting field (permalink)"),
        ("id,children{id", "unbalanced"),
        ("id}", "unbalanced"),
    ],
)
def test_unknown_fields_and_broken_expansions_are_error_100(client, token, fields, message):
    resp = client.get("/sandbox/v21.0/me/media", {"access_token": token, "fields": fields})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == 100
    assert message in err["message"]


def test_parse_fields_handles_nested_expansions():
    assert catalog.parse_fields(" id , children{id,media_url} ,caption") == {
        "id": None,
        "children": {"id": None, "media_url": None},
        "caption": None,
    }
    assert catalog.parse_fields("") == {}


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "expected"), [("1", 1), ("7", 7), ("0", 1), ("500", 60)])
def test_limit_is_honoured_within_1_to_100(client, token, limit, expected):
    control(client, "feed", username="acme_bakery", count=60)
    resp = client.get("/sandbox/me/media", {"access_token": token, "limit": limit})
    assert len(resp.json()["data"]) == expected


def test_limit_above_100_is_clamped(client, token):
    control(client, "feed", username="acme_bakery", count=150)
    body = client.get("/sandbox/me/media", {"access_token": token, "limit": "500"}).json()
    assert len(body["data"]) == 100
    assert parse_qs(urlsplit(body["paging"]["next"]).query)["limit"] == ["100"]


def test_cursors_survive_a_deletion_on_an_earlier_page(client, token):
    first = media(client, token, limit=5).json()
    control(client, "delete_post", username="acme_bakery", id=first["data"][0]["id"])
    second = fetch(client, first["paging"]["next"]).json()
    assert [m["id"] for m in second["data"]] == [
        catalog.default_post("acme_bakery", i)["id"] for i in range(5, 10)
    ]


def test_previous_goes_back_a_page(client, token):
    first = media(client, token, limit=4).json()
    second = fetch(client, first["paging"]["next"]).json()
    back = fetch(client, second["paging"]["previous"]).json()
    assert [m["id"] for m in back["data"]] == [m["id"] for m in first["data"]]


def test_the_ig_user_edge_answers_only_for_the_tokens_own_user(client, token):
    own = client.get(f"/sandbox/v21.0/{UID}/media", {"access_token": token})
    assert own.status_code == 200 and len(own.json()["data"]) == 12
    other = client.get(
        f"/sandbox/v21.0/{tokens.user_id_for('second_shop')}/media", {"access_token": token}
    )
    assert other.status_code == 400
    assert other.json()["error"]["code"] == 100
    assert other.json()["error"]["type"] == "GraphMethodException"


def test_an_empty_feed_is_an_empty_data_list(client, token):
    control(client, "feed", username="acme_bakery", count=0)
    assert client.get("/sandbox/me/media", {"access_token": token}).json() == {"data": []}


# --- the CDN ----------------------------------------------------------------------------------


def test_cdn_urls_look_like_instagrams_and_are_counted(client, token):
    url = posts(client, token)[0]["media_url"]
    query = parse_qs(urlsplit(url).query)
    assert query["oh"][0].startswith("00_")
    expiry = int(query["oe"][0], 16)
    assert cdn.DEFAULT_TTL - 60 < expiry - time.time() <= cdn.DEFAULT_TTL
    fetch(client, url)
    assert state.calls()["cdn"] == 1
    [entry] = [e for e in state.journal() if e["endpoint"] == "cdn"]
    assert entry["path"] == urlsplit(url).path


def test_an_expired_cdn_url_is_403_like_instagrams(client, token):
    control(client, "cdn", ttl_seconds=-5)
    resp = fetch(client, posts(client, token)[0]["media_url"])
    assert (resp.status_code, resp.content) == (403, b"URL signature expired")
    control(client, "cdn", ttl_seconds=3600)
    assert fetch(client, posts(client, token)[0]["media_url"]).status_code == 200


def test_an_expiry_check_uses_the_clock():
    path = "/sandbox/cdn/acme_bakery/1_n.jpg"
    oe = format(2_000_000_000, "X")
    oh = "00_" + cdn._signature(path, oe)
    assert cdn.check(path, oh, oe, now=1_999_999_999) is None
    assert cdn.check(path, oh, oe, now=2_000_000_000) == "URL signature expired"


@pytest.mark.parametrize("part", ["oh", "oe", "path"])
def test_an_altered_cdn_url_is_refused(client, token, part):
    url = posts(client, token)[0]["media_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = parts.path
    if part == "oh":
        query["oh"] = query["oh"][:-1] + ("0" if query["oh"][-1] != "0" else "1")
    elif part == "oe":
        query["oe"] = format(int(query["oe"], 16) + 86400, "X")  # a longer life
    else:
        path = path.replace("0_n.jpg", "1_n.jpg")
    resp = client.get(f"{path}?{urlencode(query)}")
    assert (resp.status_code, resp.content) == (403, b"Bad URL hash")


def test_a_deleted_posts_pictures_stop_being_served(client, token):
    carousel = posts(client, token)[2]
    urls = [carousel["media_url"], *(c["media_url"] for c in carousel["children"]["data"])]
    assert all(fetch(client, u).status_code == 200 for u in urls)
    control(client, "delete_post", username="acme_bakery", id=carousel["id"])
    assert {fetch(client, u).status_code for u in urls} == {404}
    assert carousel["id"] not in {m["id"] for m in posts(client, token)}


def test_a_picture_kind_that_does_not_match_the_post_is_404(client, token):
    photo = posts(client, token)[0]
    path = reverse_cdn("acme_bakery", photo["id"] + "_thumb.jpg")
    assert client.get(path).status_code == 404  # an image has no thumbnail
    assert client.get("/sandbox/cdn/acme_bakery/..%2Fetc.jpg").status_code == 404


def reverse_cdn(username, name):
    """A correctly signed, unexpired URL for any asset name."""
    path = f"/sandbox/cdn/{username}/{name}"
    oe = format(2_000_000_000, "X")
    return f"{path}?oh=00_{cdn._signature(path, oe)}&oe={oe}"


# --- control API ------------------------------------------------------------------------------


def test_feed_count_sets_n_default_posts(client, token):
    assert control(client, "feed", username="acme_bakery", count=60).json() == {
        "username": "acme_bakery",
        "count": 60,
    }
    items = posts(client, token)
    assert len(items) == 60
    assert sum(m["media_type"] == "CAROUSEL_ALBUM" for m in items) == 5


def test_added_posts_come_first_with_their_own_pictures(client, token):
    added = control(
        client, "post", username="acme_bakery", media_type="CAROUSEL_ALBUM", children=3
    ).json()
    video = control(client, "post", username="acme_bakery", media_type="VIDEO", caption="v").json()
    items = posts(client, token)
    assert [m["id"] for m in items[:2]] == [video["id"], added["id"]]
    assert "caption" not in items[1]
    assert [c["id"] for c in items[1]["children"]["data"]] == added["children"]
    assert items[0]["caption"] == "v"
    assert fetch(client, items[0]["thumbnail_url"]).status_code == 200
    assert picture(fetch(client, items[1]["media_url"])).size == (1080, 1080)


def test_captions_can_be_changed_and_removed(client, token):
    first = posts(client, token)[0]["id"]
    control(client, "caption", username="acme_bakery", id=first, caption="new <b>text</b>")
    assert posts(client, token)[0]["caption"] == "new <b>text</b>"
    control(client, "caption", username="acme_bakery", id=first, caption=None)
    assert "caption" not in posts(client, token)[0]


def test_changes_are_per_user_and_reset_restores_the_default_feed(client, token):
    other = control(client, "mint", username="second_shop").json()["access_token"]
    control(client, "feed", username="second_shop", count=2)
    assert len(posts(client, token)) == 12
    assert len(posts(client, other)) == 2
    control(client, "reset")
    assert len(posts(client, other)) == 12


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("feed", {"count": -1}, 400),
        ("feed", {"count": catalog.MAX_POSTS + 1}, 400),
        ("feed", {"count": "3"}, 400),
        ("feed", {"username": "bad name!", "count": 3}, 400),
        ("post", {"media_type": "STORY"}, 400),
        ("post", {"caption": 5}, 400),
        ("post", {"width": 10}, 400),
        ("post", {"media_type": "CAROUSEL_ALBUM", "children": 0}, 400),
        ("delete_post", {"id": "nope"}, 404),
        ("caption", {"id": "nope", "caption": "x"}, 404),
        ("caption", {"id": "nope", "caption": 3}, 400),
        ("cdn", {"ttl_seconds": "soon"}, 400),
        ("cdn", {"ttl_seconds": cdn.MAX_TTL + 1}, 400),
    ],
)
def test_control_refuses_bad_post_changes(client, token, action, body, status):
    resp = control(client, action, **body)
    assert resp.status_code == status
    assert resp.json()["error"]
    assert len(posts(client, token)) == 12


# --- failure kinds for /me/media and the CDN ------------------------------------------------


def test_bad_json_is_labelled_json_but_unparsable(client, token):
    control(client, "fail", endpoint="media", failures=["bad_json"])
    resp = media(client, token)
    assert resp["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(resp.content)


def test_paging_loop_points_next_at_the_same_page(client, token):
    control(client, "mode", endpoint="media", failure="paging_loop")
    first = media(client, token, limit=5)
    nxt = first.json()["paging"]["next"]
    again = fetch(client, nxt)
    assert again.json()["paging"]["next"] == nxt
    assert again.json()["data"] == first.json()["data"]


def test_paging_offhost_points_next_at_another_host(client, token):
    control(client, "fail", endpoint="media", failures=["paging_offhost"])
    nxt = media(client, token, limit=5).json()["paging"]["next"]
    assert urlsplit(nxt).netloc == "collector.example.net"
    assert parse_qs(urlsplit(nxt).query)["access_token"] == [token]


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("http500", 500, "text/html"),
        ("http503", 503, "text/plain"),
        ("http403", 403, "text/plain"),
        ("http404", 404, "text/plain"),
        ("http429", 429, "text/plain"),
        ("not_image", 200, "text/html"),
        ("image_lie", 200, "image/jpeg"),
        ("truncated_image", 200, "image/jpeg"),
        ("bomb_image", 200, "image/png"),
        ("animated_gif", 200, "image/gif"),
    ],
)
def test_cdn_failure_kinds(client, token, kind, status, content_type):
    url = posts(client, token)[0]["media_url"]
    control(client, "fail", endpoint="cdn", failures=[kind])
    resp = fetch(client, url)
    assert resp.status_code == status
    assert resp["Content-Type"].startswith(content_type)
    if kind == "http429":
        assert resp["Retry-After"] == "120"
    if kind == "image_lie":
        assert resp.content.startswith(b"<html>")
    if kind == "truncated_image":
        with pytest.raises(OSError):
            picture(resp)
    if kind == "bomb_image":
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(resp.content))
        assert resp.content[16:24] == (20000).to_bytes(4, "big") * 2  # IHDR width, height
        assert len(resp.content) < 2000
    if kind == "animated_gif":
        assert getattr(Image.open(io.BytesIO(resp.content)), "n_frames", 1) == 3
    assert fetch(client, url).status_code == 200  # consumed


def test_too_large_streams_past_32_mib_without_a_length(client, token):
    url = posts(client, token)[0]["media_url"]
    control(client, "fail", endpoint="cdn", failures=["too_large"])
    resp = fetch(client, url)
    assert resp.streaming and "Content-Length" not in resp
    first = next(iter(resp.streaming_content))
    assert first.startswith(b"\xff\xd8\xff")
    assert cdn.TOO_LARGE_BYTES >= 32 * 1024 * 1024
    resp.close()


def test_a_star_outage_reaches_the_cdn_too(client, token):
    url = posts(client, token)[0]["media_url"]
    control(client, "mode", endpoint="*", failure="http503")
    assert fetch(client, url).status_code == 503
    control(client, "mode", endpoint="*", failure=None)
    assert fetch(client, url).status_code == 200
