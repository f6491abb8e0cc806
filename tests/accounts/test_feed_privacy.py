"""Privacy (PRODUCT.md "Feed"): disconnecting an account, Meta's deauthorize and
Meta's data-deletion callback delete its feed and mirrored pictures at once, in
the request, with no worker; all or nothing, so a failure never leaves an account
gone with its pictures still served; pictures another feed uses stay."""

import io
import threading
from unittest import mock

import pytest
from django.db import DatabaseError
from PIL import Image

from accounts import feed_storage, images
from accounts.models import (
    AccessToken,
    DataDeletionRequest,
    FeedImage,
    FeedImageUse,
    FeedSnapshot,
    InstagramAccount,
)
from accounts.selectors.feed import IMAGE_PATH_PREFIX, feed_get, feed_image_get
from accounts.services import accounts as account_services
from accounts.services.accounts import account_disconnect
from tests.accounts.test_meta_callbacks import DEAUTHORIZE, DELETION
from tests.factories import make_account
from tests.instagram_fakes import meta_post, signed_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]
BASE = "https://agent.example.com"


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1080, 1080), ((seed * 40) % 256, (seed * 90) % 256, 120)).save(out, "JPEG")
    return out.getvalue()


def mirror(account: InstagramAccount, seeds: list[int]) -> FeedSnapshot:
    """A feed whose posts' pictures are mirrored as a sync stores them (renditions
    in three widths, current uses by the snapshot)."""
    snapshot, _ = FeedSnapshot.objects.get_or_create(account=account)
    posts = []
    for seed in seeds:
        data = jpeg(seed)
        renditions = images.image_renditions(data)
        for rendition in renditions:
            feed_storage.image_save(snapshot=snapshot, rendition=rendition, source_sha256=str(seed))
        posts.append(
            {
                "id": f"{account.pk}{seed}",
                "media_type": "IMAGE",
                "permalink": "https://www.instagram.com/p/x/",
                "timestamp": "2025-03-14T09:26:53Z",
                "image": {
                    "width": 1080,
                    "height": 1080,
                    "sizes": [
                        {"sha256": r.sha256, "width": r.width, "height": r.height}
                        for r in renditions
                    ],
                },
            }
        )
    FeedImageUse.objects.filter(snapshot=snapshot).update(role=FeedImageUse.Role.CURRENT)
    FeedSnapshot.objects.filter(pk=snapshot.pk).update(posts=posts)
    return snapshot


def picture_urls(account) -> list[str]:
    feed = feed_get(account=account, base_url=BASE)
    return [s["url"] for p in feed["posts"] for s in p["image"]["sizes"]]


def served(url: str) -> bool:
    return feed_image_get(name=url.rsplit(IMAGE_PATH_PREFIX, 1)[1]) is not None


@pytest.fixture
def feeds(db):
    """acme (the owner's, signed in by owner_client) and cafe, each with a mirrored
    feed; picture 7 is in both (the same bytes are stored once)."""
    acme = InstagramAccount.objects.filter(slug="acme").first() or make_account(
        username="acme_bakery", slug="acme"
    )
    cafe = make_account(username="cafe_shop", slug="cafe", ig_user_id="111", app_scoped_id="999")
    mirror(acme, [1, 2, 7])
    mirror(cafe, [3, 7])
    return acme, cafe


def test_disconnecting_deletes_the_feed_and_its_pictures_in_the_request(owner_client, feeds):
    acme, cafe = feeds
    acme_urls, cafe_urls = picture_urls(acme), picture_urls(cafe)
    assert all(served(u) for u in acme_urls + cafe_urls)

    response = owner_client.post("/accounts/cafe/disconnect/")

    assert response.status_code == 302
    assert not FeedSnapshot.objects.filter(account=cafe).exists()
    assert feed_get(account=cafe, base_url=BASE)["posts"] == []
    # Picture 3 was cafe's alone: gone. Picture 7 is acme's too: it stays.
    cafe_only = [u for u in cafe_urls if u not in acme_urls]
    assert cafe_only and not any(served(u) for u in cafe_only)
    assert all(served(u) for u in acme_urls)
    assert FeedImage.objects.count() == 3 * 3  # acme's three pictures, three widths each


def test_deauthorize_disconnects_and_deletes_the_feed(feeds):
    acme, cafe = feeds
    urls = [u for u in picture_urls(cafe) if u not in picture_urls(acme)]
    response = meta_post(
        DEAUTHORIZE, signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"})
    )
    assert response.status_code == 200
    assert InstagramAccount.objects.get(pk=cafe.pk).status == "disconnected"
    assert not FeedSnapshot.objects.filter(account=cafe).exists()
    assert not any(served(u) for u in urls)


def test_data_deletion_deletes_the_feed_and_its_pictures_in_the_request(feeds):
    acme, cafe = feeds
    acme_urls = picture_urls(acme)
    urls = [u for u in picture_urls(cafe) if u not in acme_urls]
    response = meta_post(DELETION, signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}))
    assert response.status_code == 200
    assert not InstagramAccount.objects.filter(pk=cafe.pk).exists()
    assert not any(served(u) for u in urls)  # no picture of it is left stored
    assert FeedImage.objects.count() == 3 * 3
    assert all(served(u) for u in acme_urls)
    assert DataDeletionRequest.objects.get().accounts_deleted == 1


def test_data_deletion_deletes_files_in_a_storage_backend_after_commit(
    feeds, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.STORAGES = {
        **settings.STORAGES,
        "feed": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    settings.FEED_IMAGE_STORAGE = "feed"
    account = make_account(username="file_shop", slug="files", ig_user_id="222")
    mirror(account, [11])
    files = list(tmp_path.rglob("*.jpg"))
    assert len(files) == 3
    with django_capture_on_commit_callbacks(execute=True):
        meta_post(DELETION, signed_request({"algorithm": "HMAC-SHA256", "user_id": "222"}))
    assert not any(f.exists() for f in files)


def test_a_failing_disconnect_changes_nothing(feeds):
    _, cafe = feeds
    urls = picture_urls(cafe)
    with mock.patch.object(InstagramAccount, "save", side_effect=DatabaseError("disk full")):
        with pytest.raises(DatabaseError):
            account_disconnect(account=cafe)
    assert InstagramAccount.objects.get(pk=cafe.pk).status == "active"
    assert AccessToken.objects.filter(account=cafe).exists()
    assert picture_urls(cafe) == urls and all(served(u) for u in urls)


def test_a_failing_data_deletion_changes_nothing(feeds):
    _, cafe = feeds
    urls = picture_urls(cafe)
    with mock.patch.object(
        DataDeletionRequest.objects, "create", side_effect=DatabaseError("disk full")
    ):
        with pytest.raises(DatabaseError):
            meta_post(DELETION, signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}))
    assert InstagramAccount.objects.filter(pk=cafe.pk).exists()
    assert all(served(u) for u in urls)


def test_a_disconnect_that_races_a_sync_is_retried_and_deletes_everything(feeds, monkeypatch):
    """A sync stores a picture use the deletion's first pass did not see (on
    PostgreSQL the foreign key then fails the commit): the disconnect runs again
    and deletes what is there now."""
    _, cafe = feeds
    real = account_services.feed_delete
    attempts = []

    def racing(*, account):
        attempts.append(1)
        if len(attempts) == 1:
            from django.db import IntegrityError

            real(account=account)
            raise IntegrityError("a sync stored a use meanwhile")
        return real(account=account)

    monkeypatch.setattr(account_services, "feed_delete", racing)
    account_disconnect(account=cafe)
    assert len(attempts) == 2
    assert InstagramAccount.objects.get(pk=cafe.pk).status == "disconnected"
    assert not FeedSnapshot.objects.filter(account=cafe).exists()
    assert not AccessToken.objects.filter(account=cafe).exists()


@pytest.mark.django_db(transaction=True)
def test_a_disconnect_during_a_running_sync_leaves_no_picture_behind(
    feed_sandbox, settings, monkeypatch
):
    """The real race: a sync of the same account is storing pictures while the owner
    disconnects it. The sync finds its feed gone and stores nothing more; nothing
    of the feed is left."""
    from accounts.services import feed as feed_service

    settings.FEED_IMAGE_WORKERS = 1
    feed_sandbox.feed(count=4)
    token = feed_sandbox.mint(username="acme_bakery")["access_token"]
    account = make_account(username="acme_bakery", slug="acme", token=token)
    saved = threading.Event()
    go_on = threading.Event()
    real_save = feed_storage.image_save

    def slow_save(**kw):
        image = real_save(**kw)
        if not saved.is_set():
            saved.set()
            go_on.wait(10)  # the owner disconnects now, with a pending use stored
        return image

    monkeypatch.setattr(feed_storage, "image_save", slow_save)
    results = []
    sync = threading.Thread(target=lambda: results.append(feed_service.feed_sync(account=account)))
    sync.start()
    assert saved.wait(30)
    account_disconnect(account=InstagramAccount.objects.get(pk=account.pk))
    go_on.set()
    sync.join(60)
    assert results and results[0].outcome in ("skipped", "busy")
    assert not FeedSnapshot.objects.filter(account=account).exists()
    assert not FeedImage.objects.exists()
