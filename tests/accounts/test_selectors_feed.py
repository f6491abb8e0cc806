"""accounts/selectors/feed.py: the served JSON and the Graph /me/media shape as pure
functions over stored posts, the one image URL builder, and image lookup by name;
accounts/selectors/feed_status.py: which feeds are due, and the freshness counts."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.models import FeedImage, FeedSnapshot, InstagramAccount
from accounts.selectors import feed as selectors
from accounts.selectors import feed_status

BASE = "https://agent.example.com/"
VIDEO_URL = "https://video.cdninstagram.com/v/reel.mp4?oh=00_x&oe=6823A1B2"


def sha(n):
    return f"{n:064x}"


def stored_image(n, width=1080, height=1350):
    sizes = [(320, 400), (640, 800), (width, height)] if width > 640 else [(320, 320), (640, 640)]
    return {
        "source_sha256": sha(900 + n),
        "mirrored_at": "2025-03-14T10:00:00Z",
        "width": sizes[-1][0],
        "height": sizes[-1][1],
        "sizes": [
            {"sha256": sha(n * 10 + i), "width": w, "height": h} for i, (w, h) in enumerate(sizes)
        ],
    }


def stored_posts():
    child_video = {
        "id": "17002",
        "media_type": "VIDEO",
        "image": stored_image(4, 640, 640),
        "video_url": VIDEO_URL,
    }
    return [
        {
            "id": "18001",
            "media_type": "IMAGE",
            "permalink": "https://www.instagram.com/p/A/",
            "caption": 'x"><img src=x onerror=alert(1)>',
            "timestamp": "2025-03-14T09:26:53Z",
            "image": stored_image(1),
        },
        {
            "id": "18002",
            "media_type": "VIDEO",
            "permalink": "https://www.instagram.com/reel/B/",
            "timestamp": "2025-03-13T09:26:53Z",
            "image": stored_image(2, 640, 640),
            "video_url": VIDEO_URL,
        },
        {
            "id": "18003",
            "media_type": "CAROUSEL_ALBUM",
            "permalink": "https://www.instagram.com/p/C/",
            "caption": "three",
            "timestamp": "2025-03-12T09:26:53Z",
            "image": stored_image(3),
            "children": [
                {"id": "17001", "media_type": "IMAGE", "image": stored_image(3)},
                child_video,
            ],
        },
        {
            "id": "18004",
            "media_type": "VIDEO",  # media_url withheld by Instagram: no video_url
            "permalink": "https://www.instagram.com/reel/D/",
            "timestamp": "2025-03-11T09:26:53Z",
            "image": stored_image(5, 640, 640),
        },
    ]


def payload(**kw):
    args = {
        "posts": stored_posts(),
        "account_slug": "acme",
        "username": "acme_bakery",
        "synced_at": datetime(2025, 3, 14, 10, 0, 5, 123, tzinfo=UTC),
        "stale": False,
        "base_url": BASE,
    }
    return selectors.feed_payload(**{**args, **kw})


def test_the_feed_json_is_the_contracts_shape():
    body = payload()
    assert list(body) == ["account", "username", "updated_at", "stale", "posts"]
    assert body["updated_at"] == "2025-03-14T10:00:05Z"
    photo, video, carousel, withheld = body["posts"]
    assert photo == {
        "id": "18001",
        "media_type": "IMAGE",
        "permalink": "https://www.instagram.com/p/A/",
        "caption": 'x"><img src=x onerror=alert(1)>',
        "timestamp": "2025-03-14T09:26:53Z",
        "image": {
            "url": f"https://agent.example.com/feed/img/{sha(12)}-1080.jpg",
            "width": 1080,
            "height": 1350,
            "sizes": [
                {
                    "url": f"https://agent.example.com/feed/img/{sha(10)}-320.jpg",
                    "width": 320,
                    "height": 400,
                },
                {
                    "url": f"https://agent.example.com/feed/img/{sha(11)}-640.jpg",
                    "width": 640,
                    "height": 800,
                },
                {
                    "url": f"https://agent.example.com/feed/img/{sha(12)}-1080.jpg",
                    "width": 1080,
                    "height": 1350,
                },
            ],
        },
    }
    assert "caption" not in video and video["video_url"] == VIDEO_URL
    assert [c["media_type"] for c in carousel["children"]] == ["IMAGE", "VIDEO"]
    assert carousel["children"][1]["video_url"] == VIDEO_URL
    assert "video_url" not in withheld
    # Nothing internal leaks: no source hashes, no mirroring times.
    text = json.dumps(body)
    assert "source_sha256" not in text and "mirrored_at" not in text


def test_limit_trims_and_a_missing_sync_is_null():
    assert [p["id"] for p in payload(limit=2)["posts"]] == ["18001", "18002"]
    assert payload(limit=0)["posts"] == []
    assert payload(limit=-3)["posts"] == []
    empty = payload(posts=[], synced_at=None, stale=True)
    assert (empty["updated_at"], empty["stale"], empty["posts"]) == (None, True, [])


def graph(**kw):
    args = {
        "posts": stored_posts(),
        "username": "acme_bakery",
        "base_url": BASE,
        "page_url": "https://agent.example.com/feed/acme/media",
    }
    return selectors.feed_graph_media(**{**args, **kw})


def test_the_graph_shape_is_what_instafeed_reads_with_pictures_on_the_agent():
    photo, video, carousel, withheld = graph()["data"]
    assert photo == {
        "id": "18001",
        "media_type": "IMAGE",
        "media_url": f"https://agent.example.com/feed/img/{sha(12)}-1080.jpg",
        "caption": 'x"><img src=x onerror=alert(1)>',
        "permalink": "https://www.instagram.com/p/A/",
        "timestamp": "2025-03-14T09:26:53+0000",
        "username": "acme_bakery",
    }
    # Instafeed.js shows a video's thumbnail_url: the agent's. media_url is Instagram's video.
    assert video["thumbnail_url"] == f"https://agent.example.com/feed/img/{sha(21)}-640.jpg"
    assert video["media_url"] == VIDEO_URL
    assert "caption" not in video
    assert carousel["media_url"].startswith("https://agent.example.com/feed/img/")
    assert carousel["children"] == {
        "data": [
            {
                "id": "17001",
                "media_type": "IMAGE",
                "media_url": f"https://agent.example.com/feed/img/{sha(32)}-1080.jpg",
            },
            {
                "id": "17002",
                "media_type": "VIDEO",
                "thumbnail_url": f"https://agent.example.com/feed/img/{sha(41)}-640.jpg",
                "media_url": VIDEO_URL,
            },
        ]
    }
    assert "media_url" not in withheld and withheld["thumbnail_url"]


def test_graph_paging_points_at_the_agent_with_post_id_cursors():
    first = graph(limit=3)
    assert [m["id"] for m in first["data"]] == ["18001", "18002", "18003"]
    assert first["paging"]["cursors"] == {"before": "18001", "after": "18003"}
    nxt = urlsplit(first["paging"]["next"])
    assert (nxt.netloc, nxt.path) == ("agent.example.com", "/feed/acme/media")
    assert parse_qs(nxt.query) == {"limit": ["3"], "after": ["18003"]}
    last = graph(limit=3, after="18003")
    assert [m["id"] for m in last["data"]] == ["18004"]
    assert "next" not in last["paging"]
    assert graph(after="nope") == {"data": []}
    assert len(graph(limit=0)["data"]) == 1
    assert len(graph(limit=1000)["data"]) == 4


def test_image_urls_are_built_in_one_place():
    url = selectors.feed_image_url(base_url="https://a.example/", sha256=sha(7), width=640)
    assert url == f"https://a.example/feed/img/{sha(7)}-640.jpg"
    assert selectors.IMAGE_NAME.fullmatch(url.rsplit("/", 1)[1])


@pytest.mark.django_db
def test_an_image_is_found_by_its_exact_name_only():
    image = FeedImage.objects.create(
        sha256="ab" * 32,
        source_sha256=sha(2),
        width=320,
        height=400,
        size=3,
        content_type="image/jpeg",
        data=b"abc",
    )
    assert selectors.feed_image_get(name=f"{image.sha256}-320.jpg") == (b"abc", "image/jpeg")
    for name in [
        f"{image.sha256}-640.jpg",  # another width
        f"{image.sha256}-320.png",
        f"{image.sha256.upper()}-320.jpg",
        f"../{image.sha256}-320.jpg",
        f"{image.sha256}-0320.jpg",
        f"{sha(3)}-320.jpg",  # not stored
        "",
    ]:
        assert selectors.feed_image_get(name=name) is None, name


# --- scheduling and health --------------------------------------------------------------------


@pytest.fixture
def feeds(db):
    """Accounts in every feed state, at NOW."""
    from tests.factories import make_account

    def with_snapshot(slug, **fields):
        account = make_account(slug=slug)
        FeedSnapshot.objects.create(account=account, **fields)
        FeedSnapshot.objects.filter(account=account).update(created_at=NOW - timedelta(days=2))
        return account

    new = make_account(slug="new")  # connected 10 minutes ago, no snapshot yet
    InstagramAccount.objects.filter(pk=new.pk).update(created_at=NOW - timedelta(minutes=10))
    return {
        "new": new,
        "fresh": with_snapshot(
            "fresh", synced_at=NOW - timedelta(minutes=5), attempted_at=NOW - timedelta(minutes=5)
        ),
        "due": with_snapshot(
            "due", synced_at=NOW - timedelta(minutes=31), attempted_at=NOW - timedelta(minutes=31)
        ),
        "failing": with_snapshot(
            "failing",
            synced_at=NOW - timedelta(hours=5),
            attempted_at=NOW - timedelta(minutes=10),
            last_error_at=NOW - timedelta(minutes=10),
            consecutive_failures=3,
        ),
        "limited": with_snapshot(
            "limited",
            synced_at=NOW - timedelta(hours=1),
            attempted_at=NOW - timedelta(hours=1),
            last_error_at=NOW - timedelta(hours=1),
            consecutive_failures=1,
            retry_not_before=NOW + timedelta(minutes=30),
        ),
        "reconnect": make_account(slug="reconnect", status="needs_reconnect"),
        "gone": make_account(slug="gone", status="disconnected"),
    }


NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_accounts_due_are_the_active_ones_whose_period_or_backoff_passed(feeds):
    due = {a.slug for a in feed_status.feed_accounts_due(now=NOW)}
    # failing: 3 failures back off to 4 periods (2 h) after the last attempt.
    assert due == {"new", "due"}
    later = {a.slug for a in feed_status.feed_accounts_due(now=NOW + timedelta(hours=2))}
    assert later == {"new", "due", "fresh", "failing", "limited"}


def test_feed_health_counts_without_naming_accounts(feeds):
    health = feed_status.feed_health(now=NOW)
    assert health == {
        "feeds": 5,  # active accounts only
        "fresh": 2,  # fresh, due (31 minutes is not stale yet)
        "stale": 3,  # new (never synced), failing, limited
        "never_synced": 1,
        "alerting": 1,  # failing: 5 h without a good sync > 4 periods
        "oldest_synced_at": "2030-01-01T07:00:00Z",
    }
