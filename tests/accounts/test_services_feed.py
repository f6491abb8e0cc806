"""accounts/services/feed.py over real HTTP: the real client against the sandbox
Instagram and its CDN on the live server (tests/sandbox_control.py), the real
Pillow processing and the database. Every media type, paging, the sizes, dedup,
clean-up after a deletion, stale on each failure class, 190 keeping the snapshot,
hostile pictures never stored, two concurrent syncs, feed_delete."""

import io
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from accounts import feed_storage
from accounts.models import FeedImage, FeedImageUse, FeedSnapshot, InstagramAccount
from accounts.sandbox import catalog
from accounts.selectors import feed as feed_selectors
from accounts.services import feed as feed_service
from accounts.services.feed import FeedSyncResult, Outcome, feed_delete, feed_sync
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)
BASE = "https://agent.example.com"
# Pictures of the default 12-post feed: 9 photos, 2 video thumbnails, 3 carousel items.
PICTURES = 14
# Renditions: 1080-wide pictures make 3 (320, 640, 1080), the 640x640 thumbnails 2.
RENDITIONS = 11 * 3 + 3 * 2


@pytest.fixture
def sandbox(feed_sandbox, settings):
    settings.FEED_IMAGE_WORKERS = 1  # scripted CDN failures hit a known picture
    return feed_sandbox


@pytest.fixture
def account(sandbox):
    return another_account(sandbox, slug="acme", username="acme_bakery")


def another_account(sandbox, *, slug, username):
    """An account whose token the sandbox minted for ``username``."""
    token = sandbox.mint(username=username)["access_token"]
    return make_account(slug=slug, username=username, token=token)


def snapshot(account):
    return FeedSnapshot.objects.get(account=account)


def served(account, **kw):
    return feed_selectors.feed_get(account=account, base_url=BASE, **kw)


def image_bytes(url):
    found = feed_selectors.feed_image_get(name=url.rsplit("/", 1)[1])
    return found and found[0]


def sizes(image):
    return [(s["width"], s["height"]) for s in image["sizes"]]


# --- a first sync ----------------------------------------------------------------------------


def test_a_first_sync_mirrors_every_media_type_in_the_contracts_shape(sandbox, account):
    result = feed_sync(account=account)

    assert result.outcome == Outcome.SYNCED
    assert (result.posts, result.images_fetched, result.images_missing) == (12, PICTURES, 0)
    assert sandbox.calls()["media"] == 1
    assert sandbox.calls()["cdn"] == PICTURES
    feed = served(account)
    assert (feed["account"], feed["username"], feed["stale"]) == ("acme", "acme_bakery", False)
    assert feed["updated_at"].endswith("Z")
    posts = feed["posts"]
    assert [p["id"] for p in posts] == [
        catalog.default_post("acme_bakery", i)["id"] for i in range(12)
    ]
    photo, video, carousel, markup, landscape, reel = posts[:6]

    assert set(photo) == {"id", "media_type", "permalink", "caption", "timestamp", "image"}
    assert photo["timestamp"] == "2025-03-14T09:26:53Z"
    assert photo["permalink"].startswith("https://www.instagram.com/p/")
    assert sizes(photo["image"]) == [(320, 400), (640, 800), (1080, 1350)]
    assert (photo["image"]["width"], photo["image"]["height"]) == (1080, 1350)
    assert photo["image"]["url"] == photo["image"]["sizes"][-1]["url"]
    for size in photo["image"]["sizes"]:
        assert size["url"].startswith(f"{BASE}/feed/img/")
        img = Image.open(io.BytesIO(image_bytes(size["url"])))
        assert (img.format, img.size) == ("JPEG", (size["width"], size["height"]))

    assert video["media_type"] == "VIDEO"
    assert sizes(video["image"]) == [(320, 320), (640, 640)]  # the thumbnail, never upscaled
    assert "/sandbox/cdn/acme_bakery/" in video["video_url"]  # Instagram's own URL

    assert [c["media_type"] for c in carousel["children"]] == ["IMAGE", "IMAGE", "VIDEO"]
    assert carousel["image"] == carousel["children"][0]["image"]
    assert set(carousel["children"][2]) == {"id", "media_type", "image", "video_url"}
    assert sizes(carousel["children"][1]["image"]) == [(320, 400), (640, 800), (1080, 1350)]

    assert catalog.MARKUP_CAPTION in markup["caption"]  # stored verbatim: escaping is the page's
    assert "caption" not in landscape
    assert sizes(landscape["image"]) == [(320, 168), (640, 335), (1080, 566)]
    assert "video_url" not in reel and reel["image"]  # withheld media_url: thumbnail only

    assert FeedImage.objects.count() == RENDITIONS
    assert set(FeedImageUse.objects.values_list("role", flat=True)) == {"current"}
    assert FeedSnapshot.objects.get(account=account).sync_locked_until is None


def test_served_feeds_honour_limit_and_feed_max_posts(sandbox, account, settings):
    feed_sync(account=account)
    assert len(served(account, limit=3)["posts"]) == 3
    assert served(account, limit=0)["posts"] == []
    settings.FEED_MAX_POSTS = 5
    assert len(served(account)["posts"]) == 5
    assert len(served(account, limit=40)["posts"]) == 5


def test_a_sync_reads_at_most_feed_max_posts_following_paging(
    sandbox, account, settings, monkeypatch
):
    from accounts import instagram

    monkeypatch.setattr(instagram, "MEDIA_PAGE_LIMIT", 4)
    settings.FEED_MAX_POSTS = 10
    sandbox.feed(count=30)
    assert feed_sync(account=account).posts == 10
    assert sandbox.calls()["media"] == 3  # 4 + 4 + 2 of the third page
    assert len(snapshot(account).posts) == 10


def test_fifty_posts_take_one_call_and_a_few_megabytes(sandbox, account):
    sandbox.feed(count=60)
    result = feed_sync(account=account)
    assert result.posts == 50
    assert sandbox.calls()["media"] == 1
    [entry] = [e for e in sandbox.journal() if e["endpoint"] == "media"]
    assert entry["query"]["limit"] == ["50"]
    total = sum(FeedImage.objects.values_list("size", flat=True))
    # Sandbox pictures are simpler than photos; tests/accounts/test_images.py bounds those.
    assert 1_000_000 < total < 8_000_000


# --- later syncs: reuse, dedup, changes --------------------------------------------------------


def test_a_second_sync_reuses_every_picture_without_downloading(sandbox, account):
    feed_sync(account=account)
    first = snapshot(account)

    result = feed_sync(account=account)

    assert (result.outcome, result.images_fetched, result.images_reused) == (
        Outcome.SYNCED,
        0,
        PICTURES,
    )
    assert sandbox.calls()["cdn"] == PICTURES
    again = snapshot(account)
    # The same pictures; only the videos' URLs are new (Instagram's, refreshed each sync).
    assert without_video_urls(again.posts) == without_video_urls(first.posts)
    assert again.posts[1]["video_url"] != first.posts[1]["video_url"]
    assert again.synced_at > first.synced_at
    assert FeedImage.objects.count() == RENDITIONS


def without_video_urls(posts):
    return [
        {k: v for k, v in p.items() if k != "video_url"}
        | {"children": without_video_urls(p.get("children", []))}
        for p in posts
    ]


def test_a_day_later_pictures_are_downloaded_again_and_stored_once(sandbox, account):
    feed_sync(account=account)
    ids = set(FeedImage.objects.values_list("pk", flat=True))

    result = feed_sync(account=account, now=timezone.now() + timedelta(hours=25))

    assert result.images_reused == PICTURES and result.images_fetched == 0
    assert sandbox.calls()["cdn"] == 2 * PICTURES  # fetched again: the same bytes
    assert set(FeedImage.objects.values_list("pk", flat=True)) == ids


def test_the_same_picture_on_two_accounts_is_stored_once(sandbox, account):
    twin = another_account(sandbox, slug="twin", username="acme_bakery")
    feed_sync(account=account)
    feed_sync(account=twin)
    assert FeedImage.objects.count() == RENDITIONS
    assert FeedImageUse.objects.count() == 2 * RENDITIONS


def test_new_posts_and_captions_show_at_the_next_sync(sandbox, account):
    feed_sync(account=account)
    first_id = snapshot(account).posts[0]["id"]
    added = sandbox.add_post(media_type="IMAGE", caption="brand new", width=1080, height=1080)
    sandbox.caption(first_id, "edited <i>caption</i>")
    sandbox.caption(catalog.default_post("acme_bakery", 1)["id"], None)

    result = feed_sync(account=account)

    posts = served(account)["posts"]
    assert [p["id"] for p in posts[:2]] == [added["id"], first_id]
    assert posts[0]["caption"] == "brand new"
    assert posts[1]["caption"] == "edited <i>caption</i>"
    assert "caption" not in posts[2]
    assert (result.images_fetched, sandbox.calls()["cdn"]) == (1, PICTURES + 1)


def test_a_deleted_post_disappears_then_its_pictures(sandbox, account):
    feed_sync(account=account)
    carousel = served(account)["posts"][2]
    urls = [s["url"] for c in carousel["children"] for s in c["image"]["sizes"]]
    keep = served(account)["posts"][0]["image"]["url"]
    sandbox.delete_post(carousel["id"])

    feed_sync(account=account)  # the post leaves the feed; its pictures stay one more sync
    assert carousel["id"] not in {p["id"] for p in served(account)["posts"]}
    assert all(image_bytes(u) for u in urls)

    result = feed_sync(account=account)  # ... and are gone after the following one
    assert result.images_deleted == len(urls) == 8
    assert not any(image_bytes(u) for u in urls)
    assert image_bytes(keep)
    assert FeedImage.objects.count() == RENDITIONS - 8


# --- failures keep the last good snapshot -------------------------------------------------------


FAILURES = [
    ("http500", "InstagramTransientError"),
    ("http503", "InstagramTransientError"),
    ("transient2", "InstagramTransientError"),
    ("rate_limit", "InstagramRateLimitError"),
    ("http429", "InstagramRateLimitError"),
    ("non_json", "InstagramMalformedResponseError"),
    ("bad_json", "InstagramMalformedResponseError"),
    ("empty_json", "InstagramMalformedResponseError"),
    ("paging_offhost", "InstagramMalformedResponseError"),
    ("error190", "InstagramAuthError"),
    ("error190_460", "InstagramAuthError"),
    ("permission10", "InstagramPermissionError"),
    ("config100", "InstagramConfigurationError"),
    ("slow:1", "InstagramTransientError"),
]


@pytest.mark.parametrize(("kind", "error_class"), FAILURES, ids=[k for k, _ in FAILURES])
def test_each_failure_keeps_the_snapshot_and_marks_it_stale(
    sandbox, account, settings, monkeypatch, kind, error_class
):
    from accounts import instagram

    monkeypatch.setattr(instagram, "MEDIA_PAGE_LIMIT", 5)  # paging_offhost needs a next
    settings.INSTAGRAM_READ_TIMEOUT = 0.3
    feed_sync(account=account)
    good = snapshot(account)
    before = served(account)
    sandbox.fail("media", [kind])

    result = feed_sync(account=account)

    assert result.outcome == Outcome.FAILED and not result.ok
    assert type(result.error).__name__ == error_class
    failed = snapshot(account)
    assert failed.posts == good.posts and failed.synced_at == good.synced_at
    assert (failed.error_class, failed.consecutive_failures) == (error_class, 1)
    assert failed.last_error and failed.last_error_at >= good.synced_at
    assert "IGAA" not in failed.last_error
    if error_class == "InstagramRateLimitError":
        assert failed.retry_not_before > failed.last_error_at  # Instagram's wait is kept
    now_served = served(account)
    assert now_served["stale"] is True
    assert now_served["posts"] == before["posts"]
    assert all(image_bytes(p["image"]["url"]) for p in now_served["posts"])
    assert FeedImage.objects.count() == RENDITIONS

    assert feed_sync(account=account).outcome == Outcome.SYNCED  # Instagram is back
    recovered = snapshot(account)
    assert (recovered.consecutive_failures, recovered.last_error, recovered.retry_not_before) == (
        0,
        "",
        None,
    )
    assert served(account)["stale"] is False


def test_failures_count_up_until_a_success(sandbox, account):
    feed_sync(account=account)
    sandbox.mode("media", "http503")
    for _ in range(3):
        feed_sync(account=account)
    assert snapshot(account).consecutive_failures == 3
    sandbox.mode("media", None)
    feed_sync(account=account)
    assert snapshot(account).consecutive_failures == 0


def test_a_revoked_token_190_keeps_the_snapshot(sandbox, account):
    feed_sync(account=account)
    posts = snapshot(account).posts
    sandbox.revoke("acme_bakery")
    result = feed_sync(account=account)
    assert result.error is not None, result
    assert (result.outcome, result.error.code, result.error.subcode) == (Outcome.FAILED, 190, 460)
    assert snapshot(account).posts == posts
    assert served(account)["stale"] is True


def test_a_failure_before_any_good_sync_serves_an_empty_stale_feed(sandbox, account):
    sandbox.fail("media", ["http500"])
    assert feed_sync(account=account).outcome == Outcome.FAILED
    assert served(account) | {"updated_at": None} == {
        "account": "acme",
        "username": "acme_bakery",
        "updated_at": None,
        "stale": True,
        "posts": [],
    }


def test_an_account_needing_reconnection_is_not_read(sandbox, account):
    feed_sync(account=account)
    InstagramAccount.objects.filter(pk=account.pk).update(status="needs_reconnect")
    result = feed_sync(account=account)
    assert result.outcome == Outcome.FAILED
    assert "reconnected" in result.message
    assert sandbox.calls()["media"] == 1
    assert len(snapshot(account).posts) == 12


def test_a_disconnected_account_is_skipped_and_gets_no_snapshot(sandbox):
    gone = make_account(slug="gone", status="disconnected")
    assert feed_sync(account=gone).outcome == Outcome.SKIPPED
    assert not FeedSnapshot.objects.filter(account=gone).exists()
    assert sandbox.calls()["media"] == 0


# --- pictures that cannot be had -----------------------------------------------------------------


def test_a_picture_that_fails_leaves_its_post_out_until_a_sync_can_mirror_it(sandbox, account):
    sandbox.fail("cdn", ["http500"])  # the first picture: post 1's (one download at a time)

    result = feed_sync(account=account)

    assert (result.outcome, result.posts, result.images_missing) == (Outcome.SYNCED, 11, 1)
    first_id = catalog.default_post("acme_bakery", 0)["id"]
    assert first_id not in {p["id"] for p in served(account)["posts"]}
    assert snapshot(account).images_missing == 1
    assert "HTTP 500" in snapshot(account).last_image_error
    assert served(account)["stale"] is False  # Instagram's list was read

    again = feed_sync(account=account)
    assert (again.posts, again.images_fetched, again.images_missing) == (12, 1, 0)
    assert served(account)["posts"][0]["id"] == first_id


def test_a_carousel_keeps_the_items_it_could_mirror(sandbox, account):
    carousel_id = catalog.default_post("acme_bakery", 2)["id"]
    # Downloads run in listing order: post 1, post 2's thumbnail, then the carousel.
    sandbox.fail("cdn", ["slow:0", "slow:0", "http404"])
    feed_sync(account=account)
    [carousel] = [p for p in served(account)["posts"] if p["id"] == carousel_id]
    assert [c["media_type"] for c in carousel["children"]] == ["IMAGE", "VIDEO"]
    assert carousel["image"] == carousel["children"][0]["image"]


HOSTILE = ["not_image", "image_lie", "truncated_image", "bomb_image", "animated_gif", "too_large"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_pictures_are_never_stored(sandbox, account, kind):
    sandbox.mode("cdn", kind)
    result = feed_sync(account=account)
    assert (result.outcome, result.posts, result.images_missing) == (Outcome.SYNCED, 0, PICTURES)
    assert FeedImage.objects.count() == 0
    assert served(account)["posts"] == []
    sandbox.mode("cdn", None)
    assert feed_sync(account=account).posts == 12


@pytest.mark.parametrize("kind", [*HOSTILE, "http403", "http503", "slow:2"])
def test_a_picture_failing_later_keeps_the_one_mirrored_before(sandbox, account, settings, kind):
    settings.FEED_IMAGE_WORKERS = 4
    assert feed_sync(account=account).images_missing == 0
    before = served(account)["posts"]
    sandbox.mode("cdn", kind)
    # Only the failing sync needs a short timeout (slow:2); the healthy first one keeps the
    # default, so a loaded machine cannot make it mirror nothing.
    settings.FEED_IMAGE_TIMEOUT = 0.5

    result = feed_sync(account=account, now=timezone.now() + timedelta(hours=25))

    assert (result.outcome, result.images_reused, result.images_missing) == (
        Outcome.SYNCED,
        PICTURES,
        0,
    )
    assert without_video_urls(served(account)["posts"]) == without_video_urls(before)
    assert FeedImage.objects.count() == RENDITIONS


def test_expired_cdn_urls_are_never_mirrored(sandbox, account):
    sandbox.cdn_ttl(-5)
    result = feed_sync(account=account)
    assert (result.posts, result.images_missing) == (0, PICTURES)
    assert "HTTP 403" in result.message
    sandbox.cdn_ttl(3600)
    assert feed_sync(account=account).posts == 12


def test_the_download_budget_bounds_a_sync(sandbox, account, settings):
    settings.FEED_SYNC_IMAGE_BUDGET_SECONDS = 0
    result = feed_sync(account=account)
    assert (result.outcome, result.images_missing) == (Outcome.SYNCED, PICTURES)
    assert sandbox.calls()["cdn"] == 0
    assert "out of the sync's download time" in result.message


# --- concurrency, claims and crashes --------------------------------------------------------------


def test_two_concurrent_syncs_make_one_set_of_calls(sandbox, account):
    sandbox.delay("media", 1)  # the first holds the claim while the second arrives
    results: list[FeedSyncResult | Exception] = []

    def run():
        try:
            results.append(feed_sync(account=InstagramAccount.objects.get(pk=account.pk)))
        except Exception as exc:  # noqa: BLE001 (shown by the assertion below)
            results.append(exc)
        finally:
            connection.close()

    first, second = threading.Thread(target=run), threading.Thread(target=run)
    first.start()
    # The second starts while the first waits for Instagram (so, on SQLite too, the
    # two never touch the database at the same instant).
    deadline = time.monotonic() + 20
    while sandbox.calls()["media"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    second.start()
    second.join(timeout=60)
    first.join(timeout=60)

    assert [type(r) for r in results] == [FeedSyncResult] * 2, results
    outcomes = sorted(r.outcome for r in results if isinstance(r, FeedSyncResult))
    assert outcomes == [Outcome.BUSY, Outcome.SYNCED], results
    assert sandbox.calls()["media"] == 1
    assert sandbox.calls()["cdn"] == PICTURES
    assert FeedImage.objects.count() == RENDITIONS
    assert snapshot(account).sync_locked_until is None


def test_a_sync_that_lost_its_claim_does_not_swap(sandbox, account, monkeypatch):
    feed_sync(account=account)
    posts = snapshot(account).posts
    sandbox.caption(posts[0]["id"], "changed meanwhile")
    real_resolve = feed_service.Mirror.resolve

    def taken_over(self, media):
        # The claim lapsed and another worker claimed the feed in the meantime.
        FeedSnapshot.objects.filter(pk=self.snapshot.pk).update(
            sync_locked_until=timezone.now() + timedelta(hours=1)
        )
        return real_resolve(self, media)

    monkeypatch.setattr(feed_service.Mirror, "resolve", taken_over)
    assert feed_sync(account=account).outcome == Outcome.BUSY
    assert snapshot(account).posts == posts


def test_a_crashed_sync_leaves_nothing_behind_after_the_next(sandbox, account, monkeypatch):
    real_save = feed_storage.image_save
    saved: list[object] = []

    def crash_after_two_pictures(**kw):
        if len(saved) == 5:  # post 1's three renditions, post 2's two
            raise RuntimeError("worker killed")
        saved.append(real_save(**kw))
        return saved[-1]

    monkeypatch.setattr(feed_storage, "image_save", crash_after_two_pictures)
    with pytest.raises(RuntimeError):
        feed_sync(account=account)
    assert snapshot(account).posts == [] and snapshot(account).sync_locked_until is None
    assert FeedImageUse.objects.filter(role="pending").count() == 5
    monkeypatch.setattr(feed_storage, "image_save", real_save)
    sandbox.feed(count=1)  # post 2's picture, stored before the crash, is no longer wanted

    assert feed_sync(account=account).posts == 1
    assert FeedImageUse.objects.filter(role="pending").count() == 0
    assert FeedImage.objects.count() == 3  # post 1's three renditions only


def test_a_snapshot_deleted_during_a_sync_is_not_recreated(sandbox, account, monkeypatch):
    real_resolve = feed_service.Mirror.resolve

    def deleted_meanwhile(self, media):
        feed_delete(account=account)
        return real_resolve(self, media)

    monkeypatch.setattr(feed_service.Mirror, "resolve", deleted_meanwhile)
    result = feed_sync(account=account)
    assert result.outcome == Outcome.SKIPPED
    assert "deleted" in result.message
    assert not FeedSnapshot.objects.filter(account=account).exists()
    assert FeedImage.objects.count() == 0


# --- deletion -----------------------------------------------------------------------------------


def test_feed_delete_removes_the_snapshot_and_its_pictures_at_once(sandbox, account):
    other = another_account(sandbox, slug="other", username="second_shop")
    feed_sync(account=account)
    feed_sync(account=other)
    url = served(account)["posts"][0]["image"]["url"]

    assert feed_delete(account=account) == RENDITIONS

    assert not FeedSnapshot.objects.filter(account=account).exists()
    assert image_bytes(url) is None
    assert FeedImage.objects.count() == RENDITIONS  # the other account's
    assert all(image_bytes(p["image"]["url"]) for p in served(other)["posts"])
    assert served(account)["posts"] == []
    assert feed_delete(account=account) == 0  # nothing left: a no-op


def test_feed_delete_keeps_pictures_another_feed_still_uses(sandbox, account):
    twin = another_account(sandbox, slug="twin", username="acme_bakery")
    feed_sync(account=account)
    feed_sync(account=twin)
    assert feed_delete(account=account) == 0
    assert all(image_bytes(p["image"]["url"]) for p in served(twin)["posts"])
