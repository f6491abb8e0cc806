"""Instagram Login's write paths: swap the code for a token, then the owner signs
in, a signed-in owner connects another account, or a client connects one through
an invite.

Rules (PRODUCT.md "Sign-in"; docs/instagram.md §§2-5):

- Accounts are keyed on ``/me``'s ``user_id``. The account, its token and (for a
  sign-in) the Django user linked to it are written in one transaction, never
  across an HTTP call; a request that loses a race to create the same account
  retries as an update (``accounts.services.accounts.retry_on_race``).
- Who may sign in is ``accounts.permissions.owner_may_sign_in``, decided before
  anything is stored: a refused person leaves no account, token or user behind.
  The first sign-in of a listed username pins its Instagram user id.
- Connecting another account and invites never sign anyone in; an account
  connected through an invite is linked to no user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import instagram
from accounts.models import InstagramAccount, Invite, OwnerIdentity
from accounts.permissions import owner_listed_name, owner_may_sign_in
from accounts.services.accounts import ProbedToken, account_upsert, retry_on_race
from accounts.services.errors import SignInError
from accounts.services.invites import InviteError, invite_state

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)


class NotAnOwner(SignInError):  # noqa: N818 (a refusal, named for what it says)
    """The Instagram account may not sign in to this agent. ``kind`` is
    ``not_owner``, ``deactivated`` (its user is switched off) or ``owner_pinned``
    (the listed username is pinned to another Instagram account)."""

    status = 403
    retry = None

    def __init__(self, username: str, *, deactivated: bool = False, pinned: bool = False) -> None:
        self.deactivated = deactivated
        self.pinned = pinned
        kind = "deactivated" if deactivated else "owner_pinned" if pinned else "not_owner"
        super().__init__(
            kind, username=username, message=f"@{username} may not sign in to this agent"
        )


@dataclass(frozen=True)
class InstagramLogin:
    """What the code exchange, the long-lived exchange and ``/me`` returned."""

    grant: instagram.TokenGrant
    profile: instagram.Profile
    permissions: tuple[str, ...] = ()
    obtained_at: datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class ConnectResult:
    account: InstagramAccount
    created: bool
    user: User | None = None  # the Django user to sign in (sign-in only)


@dataclass(frozen=True)
class SignInResult(ConnectResult):
    user: User  # the Django user the caller signs in


def token_obtain_from_code(*, code: str, redirect_uri: str) -> InstagramLogin:
    """Code -> short-lived token -> long-lived token -> ``/me``, in that order,
    at once (the short-lived token lives an hour). Raises the client's typed
    errors; nothing is stored here."""
    short = instagram.exchange_code(code=code, redirect_uri=redirect_uri)
    grant = instagram.exchange_for_long_lived(short_lived_token=short.access_token)
    profile = instagram.get_profile(access_token=grant.access_token)
    return InstagramLogin(
        grant=grant, profile=profile, permissions=grant.permissions or short.permissions
    )


def account_sign_in(*, login: InstagramLogin) -> SignInResult:
    """The owner signs in: refuse non-owners before storing anything, then store
    the account and token, pin the listed username and link a Django user, in one
    transaction. The caller signs the returned user in."""
    profile = login.profile

    def write() -> SignInResult:
        existing = (
            InstagramAccount.objects.select_related("user")
            .filter(ig_user_id=profile.user_id)
            .first()
        )
        _sign_in_check(profile=profile, account=existing)
        account, created = account_upsert(
            profile=profile, token=_probed_from_login(login), connected_by=None
        )
        user = _account_link_user(account=account)
        name = owner_listed_name(profile.username)
        if name is not None:
            OwnerIdentity.objects.get_or_create(
                username=name, defaults={"ig_user_id": profile.user_id}
            )
        return SignInResult(account=account, created=created, user=user)

    result = retry_on_race(write)
    logger.info(
        "sign-in: @%s as %s (%s)",
        profile.username,
        result.account.slug,
        "new account" if result.created else "existing account updated",
    )
    return result


def _sign_in_check(*, profile: instagram.Profile, account: InstagramAccount | None) -> None:
    if not owner_may_sign_in(
        ig_user_id=profile.user_id, username=profile.username, account=account
    ):
        name = owner_listed_name(profile.username)
        pinned = name is not None and OwnerIdentity.objects.filter(username=name).exists()
        logger.warning(
            "sign-in refused: @%s is %s; nothing stored",
            profile.username,
            "pinned to another Instagram account" if pinned else "not an owner",
        )
        raise NotAnOwner(profile.username, pinned=pinned)
    if account is not None and account.user is not None and not account.user.is_active:
        logger.warning("sign-in refused: the user of @%s is deactivated", profile.username)
        raise NotAnOwner(profile.username, deactivated=True)


def account_connect(
    *, login: InstagramLogin, connected_by: User | AnonymousUser | None
) -> ConnectResult:
    """A signed-in owner connects (or reconnects) an account. Nobody is signed in
    and no user is linked."""
    result = retry_on_race(
        lambda: ConnectResult(
            *account_upsert(
                profile=login.profile, token=_probed_from_login(login), connected_by=connected_by
            )
        )
    )
    logger.info("connected @%s as %s", login.profile.username, result.account.slug)
    return result


def account_connect_by_invite(*, login: InstagramLogin, invite: Invite) -> ConnectResult:
    """A client connects their account through an invite. The invite is used up in
    the same transaction (a conditional UPDATE: of two racing clients one wins and
    the other stores nothing)."""

    def write() -> ConnectResult:
        now = timezone.now()
        account, created = account_upsert(
            profile=login.profile, token=_probed_from_login(login), connected_by=invite.created_by
        )
        claimed = Invite.objects.filter(
            pk=invite.pk, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now, account=account)
        if claimed != 1:
            # Rolls back the account and token written above.
            reason = invite_state(Invite.objects.filter(pk=invite.pk).first(), now)
            raise InviteError(reason or InviteError.USED)
        return ConnectResult(account=account, created=created)

    result = retry_on_race(write)
    logger.info(
        "invite %s: connected @%s as %s", invite.pk, login.profile.username, result.account.slug
    )
    return result


def _probed_from_login(login: InstagramLogin) -> ProbedToken:
    return ProbedToken(
        access_token=login.grant.access_token,
        issued_at=login.obtained_at,
        expires_at=login.grant.expires_at,
        refreshed=False,
        note="",
    )


def _account_link_user(*, account: InstagramAccount) -> User:
    """The Django user who signs in with ``account``, created on first sign-in.
    Named after the stable Instagram id, so a renamed Instagram handle keeps its user."""
    if account.user is not None:
        return account.user
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=f"instagram-{account.ig_user_id}"[:150]
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    account.user = user
    account.connected_by = account.connected_by or user
    account.save(update_fields=["user", "connected_by", "updated_at"])
    return user
