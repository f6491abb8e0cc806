"""Feed sync and deletion (PRODUCT.md "Feed"; docs/instagram.md sections 6-8).

- ``feed_sync`` reads an account's media, mirrors the pictures (feed_mirror.py)
  and swaps the new snapshot in one short transaction. No transaction is open
  during any call to Instagram or its CDN.
- One sync per account at a time: a sync claims the account's FeedSnapshot row by
  moving ``sync_locked_until`` forward in one conditional UPDATE (the idea of
  services/refresh.py's ``account_refresh_claim``, on the feed's own row so feed
  syncs and token refreshes never wait for each other). The swap happens only
  while the claim is still the sync's own; a killed worker's claim lapses after
  FEED_SYNC_LOCK_SECONDS.
- A failure of any kind (network, timeout, 5xx, rate limit, malformed answer,
  190) changes nothing but the error fields: the last good snapshot keeps being
  served, marked stale by the selector.
- Pictures: the current and the previous snapshot's stay stored; after each swap
  the pictures this feed stopped using (its older snapshot's, a crashed sync's
  pending ones) are deleted unless another feed uses them, so a post deleted on
  Instagram leaves the feed at the next sync and its pictures stop being served at
  the one after. A sync looks only at its own feed's pictures; anything orphaned
  otherwise goes in the daily sweep (``feed_images_sweep``).
- ``account_feed_only_set``: the owner's switch between serving the token and
  serving only the feed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import feed_policy, feed_storage, instagram
from accounts.crypto import InvalidToken
from accounts.feed_mirror import Mirror, MirrorReport, image_shas
from accounts.models import AccessToken, FeedImage, FeedImageUse, FeedSnapshot, InstagramAccount
from tokenagent.redaction import redact

logger = logging.getLogger(__name__)
Role = FeedImageUse.Role


class Outcome(StrEnum):
    SYNCED = "synced"
    FAILED = "failed"  # Instagram failed; the last snapshot stays
    BUSY = "busy"  # another sync holds the claim (or took it over)
    SKIPPED = "skipped"  # the account is disconnected


@dataclass(frozen=True)
class FeedSyncResult:
    outcome: Outcome
    posts: int = 0
    images_fetched: int = 0
    images_reused: int = 0
    images_missing: int = 0
    images_deleted: int = 0
    error: instagram.InstagramError | None = field(default=None, repr=False)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.SYNCED, Outcome.BUSY, Outcome.SKIPPED)


# --- The claim -----------------------------------------------------------------------------


def feed_sync_claim(*, snapshot: FeedSnapshot, now: datetime) -> datetime | None:
    """Claim ``snapshot`` for one sync; its expiry, or None when a live claim
    exists. One conditional UPDATE, decided by its row count."""
    until = now + timedelta(seconds=feed_policy.setting("FEED_SYNC_LOCK_SECONDS"))
    rows = FeedSnapshot.objects.filter(pk=snapshot.pk).filter(
        Q(sync_locked_until__isnull=True) | Q(sync_locked_until__lt=now)
    )
    return until if rows.update(sync_locked_until=until) else None


def feed_sync_release(*, snapshot: FeedSnapshot, claim: datetime) -> None:
    FeedSnapshot.objects.filter(pk=snapshot.pk, sync_locked_until=claim).update(
        sync_locked_until=None
    )


# --- One sync --------------------------------------------------------------------------------


def feed_sync(
    *, account: InstagramAccount, now: datetime | None = None, fresh: bool = False
) -> FeedSyncResult:
    """Read ``account``'s newest FEED_MAX_POSTS posts from Instagram now, mirror
    their pictures and swap the snapshot in. Returns what happened; Instagram
    failures are recorded on the snapshot and returned, not raised.

    ``fresh``: ``account`` was just read with its snapshot and token
    (selectors/feed_status.py ``feed_account_for_sync``, as the task does); else
    they are read here, in one query."""
    now = now or timezone.now()
    if not fresh:
        account = (
            InstagramAccount.objects.select_related("feed_snapshot", "access_token")
            .defer("feed_snapshot__posts")
            .get(pk=account.pk)
        )
    if account.status == InstagramAccount.Status.DISCONNECTED:
        return FeedSyncResult(outcome=Outcome.SKIPPED, message="the account is disconnected")
    snapshot = getattr(account, "feed_snapshot", None)
    if snapshot is None:
        snapshot, _ = FeedSnapshot.objects.get_or_create(account=account)
    claim = feed_sync_claim(snapshot=snapshot, now=now)
    if claim is None:
        return FeedSyncResult(outcome=Outcome.BUSY, message="another sync of this feed is running")
    try:
        return _sync_claimed(account=account, snapshot=snapshot, claim=claim, now=now)
    finally:
        # A swap gives the claim back in its commit; every other way out does it here.
        feed_sync_release(snapshot=snapshot, claim=claim)


def _access_token(account: InstagramAccount) -> str:
    token: AccessToken | None = getattr(account, "access_token", None)
    if token is None:
        raise instagram.InstagramAuthError("the account has no token; connect it again")
    try:
        return token.value
    except InvalidToken as exc:
        raise instagram.InstagramConfigurationError(
            f"the stored token cannot be decrypted ({type(exc).__name__}); "
            "check TOKEN_ENCRYPTION_KEY/SECRET_KEY"
        ) from None


def _sync_claimed(
    *, account: InstagramAccount, snapshot: FeedSnapshot, claim: datetime, now: datetime
) -> FeedSyncResult:
    # Pictures a crashed sync left pending are nobody's now (we hold the claim).
    stale = FeedImageUse.objects.filter(snapshot=snapshot, role=Role.PENDING)
    dropped = set(stale.values_list("image_id", flat=True))
    stale.delete()
    # Read the snapshot (and its posts) now, under the claim: a sync that swapped
    # just before it may have deleted pictures an older copy refers to.
    snapshot = FeedSnapshot.objects.get(pk=snapshot.pk)
    try:
        if account.status == InstagramAccount.Status.NEEDS_RECONNECT:
            raise instagram.InstagramAuthError(
                "the account needs to be reconnected; its feed is not read"
            )
        media = instagram.media_list(
            access_token=_access_token(account), limit=feed_policy.setting("FEED_MAX_POSTS")
        )
    except instagram.InstagramError as exc:
        return _record_failure(account=account, snapshot=snapshot, error=exc, now=now)

    mirror = Mirror(snapshot=snapshot, now=now)
    try:
        mirror.resolve(media)
    except IntegrityError:
        # A pending use could not be stored: feed_delete took the snapshot meanwhile.
        if FeedSnapshot.objects.filter(pk=snapshot.pk).exists():
            raise
        return FeedSyncResult(outcome=Outcome.SKIPPED, message="the feed was deleted meanwhile")
    posts = [p for p in (mirror.post(m) for m in media) if p is not None]
    report = mirror.report
    released = _swap(snapshot=snapshot, claim=claim, posts=posts, report=report, now=now)
    if released is None:
        deleted = feed_storage.images_delete_unused(dropped)
        return FeedSyncResult(
            outcome=Outcome.BUSY, message="the claim lapsed and another sync took over"
        )
    deleted = feed_storage.images_delete_unused(dropped | released)
    logger.info(
        "feed of %s synced: %s posts, %s pictures fetched, %s reused, %s missing, %s deleted",
        account.slug,
        len(posts),
        report.fetched,
        report.reused,
        report.missing,
        deleted,
    )
    return FeedSyncResult(
        outcome=Outcome.SYNCED,
        posts=len(posts),
        images_fetched=report.fetched,
        images_reused=report.reused,
        images_missing=report.missing,
        images_deleted=deleted,
        message="; ".join(report.errors)[:2000],
    )


def _swap(
    *,
    snapshot: FeedSnapshot,
    claim: datetime,
    posts: list[dict],
    report: MirrorReport,
    now: datetime,
) -> set[int] | None:
    """Swap the new posts in, with the image uses, in one short transaction.
    Returns the images whose uses it dropped (the older snapshot's, the pending
    ones), or None (nothing changed) when the claim is no longer this sync's."""
    shas = image_shas(posts)
    with transaction.atomic():
        locked = FeedSnapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
        if locked is None or locked.sync_locked_until != claim:
            return None
        ids = list(FeedImage.objects.filter(sha256__in=shas).values_list("pk", flat=True))
        if len(ids) != len(shas):
            # Cannot happen while uses protect them; never serve a dangling reference.
            raise RuntimeError("a picture of the new feed snapshot is not stored")
        uses = FeedImageUse.objects.filter(snapshot=snapshot)
        released = set(
            uses.filter(role__in=[Role.PREVIOUS, Role.PENDING]).values_list("image_id", flat=True)
        )
        uses.filter(role=Role.PREVIOUS).delete()
        uses.filter(role=Role.CURRENT).update(role=Role.PREVIOUS)
        FeedImageUse.objects.bulk_create(
            [FeedImageUse(snapshot=snapshot, image_id=pk, role=Role.CURRENT) for pk in ids]
        )
        uses.filter(role=Role.PENDING).delete()
        changed = posts != locked.posts or locked.changed_at is None
        _save(
            locked,
            posts=posts,
            changed_at=now if changed else locked.changed_at,
            synced_at=now,
            attempted_at=now,
            last_error="",
            last_error_at=None,
            error_class="",
            consecutive_failures=0,
            retry_not_before=None,
            images_missing=report.missing,
            last_image_error=redact("; ".join(report.errors))[:2000],
            sync_locked_until=None,
        )
    return released - set(ids)


def _save(snapshot: FeedSnapshot, **fields: object) -> None:
    """Write ``fields`` of a row locked by this transaction with ``save()``, not
    ``update()``: its post_save receiver (accounts/token_cache.py) drops the served
    feed after commit, so new posts, or the stale flag after a failure, show at once."""
    for name, value in fields.items():
        setattr(snapshot, name, value)
    snapshot.save(update_fields=list(fields))


def _record_failure(
    *,
    account: InstagramAccount,
    snapshot: FeedSnapshot,
    error: instagram.InstagramError,
    now: datetime,
) -> FeedSyncResult:
    """Keep the snapshot; record why, and Instagram's wish to be left alone."""
    retry_after = getattr(error, "retry_after", None)
    logger.warning(
        "feed of %s not synced (%s): %s", account.slug, type(error).__name__, error.describe()
    )
    with transaction.atomic():
        locked = FeedSnapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
        if locked is not None:  # else feed_delete took it meanwhile: nothing to record
            _save(
                locked,
                attempted_at=now,
                last_error=redact(error.describe())[:2000],
                last_error_at=now,
                error_class=type(error).__name__,
                consecutive_failures=locked.consecutive_failures + 1,
                retry_not_before=now + timedelta(seconds=retry_after) if retry_after else None,
            )
    return FeedSyncResult(outcome=Outcome.FAILED, error=error, message=error.describe())


# --- Deletion ---------------------------------------------------------------------------------


def feed_delete(*, account: InstagramAccount) -> int:
    """Delete ``account``'s feed snapshot and every picture no other feed uses, at
    once (disconnect, Meta's data deletion): a full sweep, so nothing an earlier
    crash left behind outlives the deletion either. Returns the pictures deleted.
    A sync running meanwhile finds its snapshot gone and does not swap."""
    with transaction.atomic():
        FeedSnapshot.objects.filter(account=account).delete()
    return feed_storage.images_delete_unused()


def feed_images_sweep() -> int:
    """Delete every picture no feed uses: what a sync that crashed after storing
    pictures, or lost its claim, left behind (a sync only looks at the pictures it
    stopped using). Run once a day by the periodic job (services/refresher.py)."""
    deleted = feed_storage.images_delete_unused()
    if deleted:
        logger.info("feed picture sweep: %s unused picture(s) deleted", deleted)
    return deleted


# --- Feed only ----------------------------------------------------------------------------------


def account_feed_only_set(*, account: InstagramAccount, feed_only: bool) -> InstagramAccount:
    """Serve only ``account``'s feed (its token URLs then answer 404 as for an
    unknown account, so its token never leaves the agent), or its token again.
    The save's receivers drop the served copies at once."""
    if account.feed_only != feed_only:
        account.feed_only = feed_only
        account.save(update_fields=["feed_only", "updated_at"])
        logger.info("%s: feed only %s", account.slug, "on" if feed_only else "off")
    return account
