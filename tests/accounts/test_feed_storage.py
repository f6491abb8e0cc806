"""accounts/feed_storage.py: pictures in the database (the default) or in any Django
storage (FileSystemStorage here), stored once per content, read back, deleted when
no snapshot uses them, and the races with a concurrent clean-up; plus a whole sync
over HTTP with the storage backend."""

import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from accounts import feed_storage
from accounts.images import image_renditions
from accounts.models import FeedImage, FeedImageUse, FeedSnapshot
from accounts.sandbox import cdn
from accounts.selectors.feed import feed_image_get
from accounts.services.feed import feed_delete, feed_sync
from tests.factories import make_account

RENDITIONS = image_renditions(cdn.jpeg("storage-test", 700, 700))  # 320, 640, 700


@pytest.fixture
def snapshot(db):
    return FeedSnapshot.objects.create(account=make_account(slug="acme"))


@pytest.fixture
def on_disk(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "feed": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    settings.FEED_IMAGE_STORAGE = "feed"
    return tmp_path


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def save(snapshot, rendition=RENDITIONS[0]):
    return feed_storage.image_save(snapshot=snapshot, rendition=rendition, source_sha256="s" * 64)


def test_the_database_is_the_default_place(snapshot):
    image = save(snapshot)
    assert feed_storage.image_storage() == "database"
    assert (image.storage, image.storage_name) == ("", "")
    stored = FeedImage.objects.get(pk=image.pk)
    assert stored.data is not None and bytes(stored.data) == RENDITIONS[0].content
    assert (stored.size, stored.width, stored.content_type) == (
        len(RENDITIONS[0].content),
        320,
        "image/jpeg",
    )
    assert feed_storage.image_read(image=stored) == RENDITIONS[0].content
    assert FeedImageUse.objects.get().role == "pending"


def test_the_same_bytes_are_stored_once(snapshot):
    other = FeedSnapshot.objects.create(account=make_account(slug="other"))
    first, again, elsewhere = save(snapshot), save(snapshot), save(other)
    assert first.pk == again.pk == elsewhere.pk
    assert FeedImage.objects.count() == 1
    assert FeedImageUse.objects.count() == 2  # one pending use per snapshot


def test_only_images_without_any_use_are_deleted(snapshot):
    used, unused = save(snapshot, RENDITIONS[0]), save(snapshot, RENDITIONS[1])
    FeedImageUse.objects.filter(image=unused).delete()
    assert feed_storage.images_delete_unused() == 1
    assert list(FeedImage.objects.values_list("pk", flat=True)) == [used.pk]
    assert feed_storage.images_delete_unused() == 0


def test_deletion_goes_in_batches(snapshot, monkeypatch):
    monkeypatch.setattr(feed_storage, "DELETE_BATCH", 2)
    for r in RENDITIONS:
        save(snapshot, r)
    FeedImageUse.objects.all().delete()
    assert feed_storage.images_delete_unused() == 3
    assert not FeedImage.objects.exists()


def test_an_unknown_storage_alias_is_a_configuration_error(settings, snapshot):
    settings.FEED_IMAGE_STORAGE = "s3-typo"
    with pytest.raises(ImproperlyConfigured, match="FEED_IMAGE_STORAGE"):
        save(snapshot)
    assert not FeedImage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_storage_backend_holds_the_bytes_and_loses_them_with_the_row(on_disk):
    snapshot = FeedSnapshot.objects.create(account=make_account(slug="acme"))
    image = save(snapshot)
    assert image.data is None and image.storage == "feed"
    [path] = files(on_disk)
    assert path.read_bytes() == RENDITIONS[0].content
    assert image.storage_name.startswith(f"feed/{image.sha256[:2]}/{image.sha256}-")
    assert feed_image_get(name=f"{image.sha256}-320.jpg") == (RENDITIONS[0].content, "image/jpeg")

    FeedImageUse.objects.all().delete()
    assert feed_storage.images_delete_unused() == 1
    assert files(on_disk) == []  # removed once the deletion committed


@pytest.mark.django_db(transaction=True)
def test_pictures_stay_readable_where_they_were_written_when_the_setting_changes(settings, on_disk):
    snapshot = FeedSnapshot.objects.create(account=make_account(slug="acme"))
    settings.FEED_IMAGE_STORAGE = "database"
    in_db = save(snapshot, RENDITIONS[0])
    settings.FEED_IMAGE_STORAGE = "feed"
    on_file = save(snapshot, RENDITIONS[1])
    assert (in_db.storage, on_file.storage) == ("", "feed")
    assert feed_storage.image_read(image=in_db) == RENDITIONS[0].content
    assert feed_storage.image_read(image=on_file) == RENDITIONS[1].content


@pytest.mark.django_db(transaction=True)
def test_a_lost_file_reads_as_missing_not_as_an_error(on_disk):
    snapshot = FeedSnapshot.objects.create(account=make_account(slug="acme"))
    image = save(snapshot)
    files(on_disk)[0].unlink()
    assert feed_storage.image_read(image=image) is None
    assert feed_image_get(name=f"{image.sha256}-320.jpg") is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_deleted_by_a_concurrent_cleanup_is_stored_again(monkeypatch):
    """The race image_save guards against: it finds the image, a clean-up in another
    process deletes it (it had no use yet), then the use is inserted: the foreign
    key refuses at commit, and image_save stores the bytes again. (SQLite runs one
    writer at a time, so there the race cannot happen.)"""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    snapshot = FeedSnapshot.objects.create(account=make_account(slug="acme"))
    orphan = save(snapshot)
    FeedImageUse.objects.all().delete()
    real = FeedImageUse.objects.get_or_create
    raced: list[bool] = []

    def cleanup_in_between(**kw):
        if not raced:
            raced.append(True)
            worker = threading.Thread(target=_delete_unused_elsewhere)
            worker.start()
            worker.join()
        return real(**kw)

    monkeypatch.setattr(FeedImageUse.objects, "get_or_create", cleanup_in_between)
    image = save(snapshot)

    assert raced
    assert image.pk != orphan.pk  # stored anew
    assert FeedImage.objects.get().pk == image.pk
    assert FeedImageUse.objects.get().image_id == image.pk


def _delete_unused_elsewhere():
    try:
        assert feed_storage.images_delete_unused() == 1
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_whole_sync_on_a_storage_backend(sandbox_live, settings, on_disk):
    settings.INSTAGRAM_GRAPH_VERSION = "v21.0"
    token = sandbox_live.mint(username="acme_bakery")["access_token"]
    account = make_account(slug="acme", username="acme_bakery", token=token)
    sandbox_live.feed(count=3)

    feed_sync(account=account)

    stored = list(FeedImage.objects.all())
    assert len(files(on_disk)) == len(stored) == 3 + 2 + (3 + 3 + 2)  # photo, video, carousel
    assert all(image.data is None for image in stored)
    carousel = FeedSnapshot.objects.get(account=account).posts[2]
    sandbox_live.delete_post(carousel["id"])
    feed_sync(account=account)
    feed_sync(account=account)
    assert len(files(on_disk)) == FeedImage.objects.count() == 5

    feed_delete(account=account)
    assert files(on_disk) == [] and not FeedImage.objects.exists()
