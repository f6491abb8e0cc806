"""Client invites: a signed, expiring, single-use link that lets a client connect
one account and nothing more (it never signs anyone in)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core import signing
from django.utils import timezone

from accounts.models import Invite
from accounts.services.accounts import is_user
from accounts.services.errors import ConnectError, SignInError

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

INVITE_DEFAULT_DAYS = 7
INVITE_MAX_DAYS = 30
_INVITE_SALT = "tokenagent.invite"


class InviteError(SignInError):
    """An invite link cannot be used; ``reason`` says why (its page is ``invite_<reason>``)."""

    TAMPERED = "tampered"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    retry = None  # only the person who sent the link can help

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invite_{reason}", message=f"invite link {reason}")


def invite_create(
    *,
    created_by: User | AnonymousUser | None,
    note: str = "",
    days: int = INVITE_DEFAULT_DAYS,
    now: datetime | None = None,
) -> Invite:
    if not 1 <= days <= INVITE_MAX_DAYS:
        raise ConnectError(f"An invite lasts between 1 and {INVITE_MAX_DAYS} days.")
    now = now or timezone.now()
    invite = Invite.objects.create(
        note=note.strip()[:200],
        created_by=created_by if is_user(created_by) else None,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    logger.info("invite %s created, valid for %s days", invite.pk, days)
    return invite


def invite_link_token(*, invite: Invite) -> str:
    """The signed part of the invite link (``/invite/<token>/``)."""
    return signing.Signer(salt=_INVITE_SALT).sign(invite.key)


def invite_state(invite: Invite | None, now: datetime) -> str | None:
    """Why ``invite`` cannot be used at ``now`` (an :class:`InviteError` reason), or None."""
    if invite is None:
        return InviteError.UNKNOWN
    if invite.used_at is not None:
        return InviteError.USED
    if invite.expires_at <= now:
        return InviteError.EXPIRED
    return None


def invite_check(*, invite: Invite | None, now: datetime | None = None) -> Invite:
    """``invite`` if it can still be used; raises :class:`InviteError`."""
    reason = invite_state(invite, now or timezone.now())
    if reason or invite is None:
        raise InviteError(reason or InviteError.UNKNOWN)
    return invite


def invite_resolve(*, token: str, now: datetime | None = None) -> Invite:
    """The invite an invite link stands for; raises :class:`InviteError` when the
    link was tampered with, withdrawn, used or expired."""
    try:
        key = signing.Signer(salt=_INVITE_SALT).unsign(token or "")
    except signing.BadSignature:
        raise InviteError(InviteError.TAMPERED) from None
    return invite_check(invite=Invite.objects.filter(key=key).first(), now=now)


def invite_revoke(*, invite: Invite) -> None:
    """Withdraw an unused invite: its link stops working at once."""
    invite.delete()
