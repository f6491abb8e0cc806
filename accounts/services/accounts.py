"""Accounts as stored: the one upsert every connection goes through (keyed on the
Instagram user id, retried when a concurrent request wins; it queues the account's
first feed sync), slugs, and the owner's actions on an account (disconnect, which
deletes its feed too, rename, make default).

Every write to an account or its token goes through ``Model.save()`` /
``delete()``, so the receivers in ``accounts/token_cache.py`` drop served copies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard, TypeVar

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import instagram
from accounts.models import AccessToken, InstagramAccount
from accounts.services.errors import ConnectError
from accounts.services.feed import feed_delete
from accounts.services.feed_schedule import feed_first_sync_queue
from accounts.services.tokens import token_store
from tokenagent.redaction import redact

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

T = TypeVar("T")

SLUG_MAX_LENGTH: int = InstagramAccount._meta.get_field("slug").max_length or 64
# Names the agent's own URLs take where a slug would go (/feed/embed.js, /feed/img/...;
# accounts/urls.py): an account served under one would be unreachable there.
RESERVED_SLUGS = frozenset({"embed", "img"})
_RACE_RETRIES = 3


class SlugError(ConnectError):
    """A slug that is malformed or taken by another account."""


@dataclass(frozen=True)
class ProbedToken:
    """A token to store and what we know about its lifetime."""

    access_token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    refreshed: bool
    note: str


def shown_name(value: object, *, limit: int = 40) -> str:
    """An account name from a file or the command line, as it may be printed:
    characters a slug cannot hold become ``?``, long names are cut, token-like
    ones are redacted (a token pasted where a name belongs is never echoed)."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "?", str(value))
    if len(text) > limit:
        text = text[:limit] + "..."
    return redact(text)


def is_user(user: object) -> TypeGuard[User]:
    """A signed-in user (not None, not the anonymous user)."""
    return user is not None and bool(getattr(user, "is_authenticated", False))


# --- The upsert ----------------------------------------------------------------------------------


def retry_on_race(write: Callable[[], T]) -> T:
    """Run ``write`` in a transaction; when a concurrent request created the same
    account (or took the same slug) first, or a feed sync stored a picture use the
    deletion did not see, run it again: it then sees the other side's rows."""
    for attempt in range(_RACE_RETRIES):
        try:
            with transaction.atomic():
                return write()
        except IntegrityError:
            if attempt == _RACE_RETRIES - 1:
                raise
            logger.info("a concurrent write conflicted with this one; retrying")
    raise AssertionError("unreachable")  # pragma: no cover


def account_upsert(
    *,
    profile: instagram.Profile,
    token: ProbedToken,
    connected_by: User | AnonymousUser | None = None,
    slug: str | None = None,
    refresh_frequency: str | None = None,
) -> tuple[InstagramAccount, bool]:
    """Create or update the account keyed on ``profile.user_id`` and store its token;
    its feed is read as soon as the transaction commits. Must run inside a
    transaction."""
    account = (
        InstagramAccount.objects.select_for_update().filter(ig_user_id=profile.user_id).first()
    )
    created = account is None
    if account is None:
        account = InstagramAccount(
            ig_user_id=profile.user_id,
            slug=slug or _free_slug(_slug_from_username(profile.username)),
            connected_by=connected_by if is_user(connected_by) else None,
        )
    elif slug:
        account.slug = slug
    account.app_scoped_id = profile.id or account.app_scoped_id
    account.username = profile.username
    account.name = profile.name[:255]
    account.account_type = profile.account_type[:32]
    if len(profile.profile_picture_url) <= 2000:
        account.profile_picture_url = profile.profile_picture_url
    account.status = InstagramAccount.Status.ACTIVE
    account.last_error = ""
    account.last_error_at = None
    account.connected_at = timezone.now()
    if refresh_frequency:
        account.refresh_frequency = refresh_frequency
    account.save()
    token_store(
        account=account,
        access_token=token.access_token,
        expires_at=token.expires_at,
        issued_at=token.issued_at,
        refreshed=token.refreshed,
    )
    feed_first_sync_queue(account=account)
    return account, created


# --- Slugs ---------------------------------------------------------------------------------------


def _slug_from_username(username: str) -> str:
    """Instagram handles use letters, digits, ``_`` and ``.``; slugs keep the first
    three and turn dots into hyphens."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", username.strip().lstrip("@").lower()).strip("-_")
    return slug[: SLUG_MAX_LENGTH - 4] or "account"


def _slug_taken(slug: str, *, exclude_pk: int | None = None) -> bool:
    if slug.lower() in RESERVED_SLUGS:
        return True
    qs = InstagramAccount.objects.filter(slug__iexact=slug)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def _free_slug(base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` ... when another account has it."""
    if not _slug_taken(base):
        return base
    for n in range(2, 1000):
        candidate = f"{base}-{n}"
        if not _slug_taken(candidate):
            return candidate
    raise SlugError(f"No free slug left for {base!r}")  # pragma: no cover


def slug_validate(
    *, slug: str, account: InstagramAccount | None = None, unique: bool = True
) -> str:
    """A slug as typed by a person or read from a file: 1 to 64 letters, digits,
    ``-`` and ``_``; with ``unique``, not used by another account than ``account``
    (case-insensitively). Returns it stripped; raises :class:`SlugError`.
    Imports pass ``unique=False``: they check their slugs against the accounts
    their tokens turn out to belong to."""
    slug = (slug or "").strip()
    try:
        if not slug or len(slug) > SLUG_MAX_LENGTH:
            raise ValidationError("length")
        validate_slug(slug)
    except ValidationError:
        raise SlugError(
            f"{shown_name(slug)!r} is not a usable name: use 1 to {SLUG_MAX_LENGTH} letters, "
            "digits, hyphens or underscores."
        ) from None
    if slug.lower() in RESERVED_SLUGS:
        raise SlugError(f"{slug!r} is reserved for the agent's own URLs; choose another name.")
    if unique and _slug_taken(slug, exclude_pk=account.pk if account else None):
        raise SlugError(f"Another account is already served as {slug!r}.")
    return slug


# --- Owner actions -------------------------------------------------------------------------------


def account_disconnect(*, account: InstagramAccount, reason: str = "") -> InstagramAccount:
    """Stop serving and refreshing ``account``, delete its token, and delete its feed
    and the pictures no other feed uses, at once (PRODUCT.md "Feed": in the request,
    no worker needed). One transaction: a failure leaves the account connected with
    its feed, never disconnected with its pictures still served. The account row
    stays (its slug, history and settings) so it can be reconnected."""

    def write() -> int:
        for token in AccessToken.objects.filter(account=account):
            token.delete()
        pictures = feed_delete(account=account)
        account.status = InstagramAccount.Status.DISCONNECTED
        if reason:
            account.last_error = redact(reason)[:2000]
            account.last_error_at = timezone.now()
        account.save()
        return pictures

    pictures = retry_on_race(write)
    logger.info(
        "disconnected %s (@%s); its feed and %s picture(s) deleted",
        account.slug,
        account.username,
        pictures,
    )
    return account


def account_rename(*, account: InstagramAccount, slug: str) -> InstagramAccount:
    """Serve ``account`` under a new slug. Sites using the old URL stop getting it."""
    slug = slug_validate(slug=slug, account=account)
    old = account.slug
    if slug == old:
        return account
    try:
        with transaction.atomic():
            account.slug = slug
            account.save(update_fields=["slug", "updated_at"])
    except IntegrityError:
        account.slug = old
        raise SlugError(f"Another account is already served as {slug!r}.") from None
    logger.info("renamed %s to %s", old, slug)
    return account


def account_set_default(*, account: InstagramAccount) -> InstagramAccount:
    """Serve ``account`` at ``/token.json``, ``/token.js`` and ``/token``."""
    with transaction.atomic():
        for previous in InstagramAccount.objects.filter(is_default=True).exclude(pk=account.pk):
            previous.is_default = False
            previous.save(update_fields=["is_default", "updated_at"])
        account.is_default = True
        account.save(update_fields=["is_default", "updated_at"])
    return account
