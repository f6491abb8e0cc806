"""Where mirrored feed pictures live, and their bookkeeping: store a rendition once
per content (SHA-256), read it back, delete the ones no snapshot uses.

``FEED_IMAGE_STORAGE`` chooses the place: ``"database"`` (the default: bytes in
the FeedImage row, so Heroku's web and worker dynos share them with Postgres
alone) or the alias of a Django storage in ``STORAGES`` (a shared disk, S3 with
django-storages, ...). Rows record where their bytes went, so changing the
setting later leaves older pictures readable.

Concurrency: an image is created (or found) together with a *pending* use in one
transaction, so it is never without a use while a sync still needs it; deletion
takes only images without any use, and the foreign keys (checked at commit on
PostgreSQL) fail a deletion that raced a new use rather than orphan it. Once a
deletion commits, the web processes' copies of pictures are dropped
(``token_cache.drop_images``)."""

from __future__ import annotations

import functools
import logging
import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts import token_cache
from accounts.images import Rendition
from accounts.models import FeedImage, FeedImageUse, FeedSnapshot

logger = logging.getLogger(__name__)

DATABASE = "database"
DELETE_BATCH = 500


def image_storage() -> str:
    """The configured place for new pictures: "database" or a STORAGES alias."""
    value = getattr(settings, "FEED_IMAGE_STORAGE", None) or DATABASE
    if value != DATABASE and value not in settings.STORAGES:
        raise ImproperlyConfigured(
            f"FEED_IMAGE_STORAGE={value!r} is neither 'database' nor a STORAGES alias "
            f"({', '.join(settings.STORAGES)})"
        )
    return value


def _write_file(alias: str, rendition: Rendition) -> str:
    """Save the bytes under a name of their own: never shared by two rows, so
    deleting one row's file can never take another's."""
    sha = rendition.sha256
    name = f"feed/{sha[:2]}/{sha}-{secrets.token_hex(4)}.jpg"
    return storages[alias].save(name, ContentFile(rendition.content))


def image_save(*, snapshot: FeedSnapshot, rendition: Rendition, source_sha256: str) -> FeedImage:
    """The FeedImage holding ``rendition`` (created unless the same bytes are stored
    already), with a pending use by ``snapshot``, both committed together."""
    alias = image_storage()
    for _attempt in range(3):
        existing = FeedImage.objects.defer("data").filter(sha256=rendition.sha256).first()
        name = _write_file(alias, rendition) if existing is None and alias != DATABASE else ""
        try:
            with transaction.atomic():
                image = existing or FeedImage.objects.create(
                    sha256=rendition.sha256,
                    source_sha256=source_sha256,
                    width=rendition.width,
                    height=rendition.height,
                    size=len(rendition.content),
                    content_type=rendition.content_type,
                    data=rendition.content if alias == DATABASE else None,
                    storage="" if alias == DATABASE else alias,
                    storage_name=name,
                )
                FeedImageUse.objects.get_or_create(
                    snapshot=snapshot, image=image, role=FeedImageUse.Role.PENDING
                )
            return image
        except IntegrityError:
            # Another sync stored the same bytes a moment ago, or a cleanup deleted
            # the row we found: look again.
            if name:
                storages[alias].delete(name)
    raise IntegrityError(f"could not store image {rendition.sha256[:12]}")


def image_read(*, image: FeedImage) -> bytes | None:
    """The stored bytes, or None when they are gone (a storage lost the file)."""
    if not image.storage:
        return bytes(image.data) if image.data is not None else None
    try:
        with storages[image.storage].open(image.storage_name, "rb") as f:
            return f.read()
    except (OSError, KeyError, ImproperlyConfigured):
        # The file is missing, or the STORAGES alias it was written to is gone.
        logger.warning("feed image %s is missing from storage %s", image.sha256[:12], image.storage)
        return None


def _delete_files(files: list[tuple[str, str]]) -> None:
    for alias, name in files:
        try:
            storages[alias].delete(name)
        except (OSError, KeyError, ImproperlyConfigured) as exc:
            logger.warning("could not delete feed image file (%s)", type(exc).__name__)


def images_delete_unused() -> int:
    """Delete every image no snapshot uses (current, previous or pending), and
    their files once the deletion is committed. Returns how many were deleted."""
    deleted = 0
    while True:
        try:
            with transaction.atomic():
                batch = list(
                    FeedImage.objects.filter(uses__isnull=True).values_list(
                        "pk", "storage", "storage_name"
                    )[:DELETE_BATCH]
                )
                if not batch:
                    return deleted
                # PROTECT refuses if a use appeared since the query; the foreign key
                # (checked at commit) catches one that appears after that.
                count, _ = FeedImage.objects.filter(pk__in=[pk for pk, _, _ in batch]).delete()
                files = [(alias, name) for _, alias, name in batch if alias and name]
                transaction.on_commit(functools.partial(_delete_files, files))
                # The web processes' copies of pictures (selectors/served_images.py).
                transaction.on_commit(token_cache.drop_images)
        except (IntegrityError, ProtectedError):
            logger.info("feed image cleanup raced a sync; the next cleanup retries")
            return deleted
        deleted += count
        if len(batch) < DELETE_BATCH:
            return deleted
