"""Connecting accounts: Instagram sign-in, connecting further accounts, client
invites, imports of existing tokens, disconnect / rename / default, Meta's
deauthorize and data-deletion callbacks, and re-encryption under a new key.

Rules (PRODUCT.md "Sign-in", "Import", "Secrets"; instagram-api.md §§2-5, 10):

- Accounts are keyed on ``/me``'s ``user_id``. The account, its token and (for a
  sign-in) the Django user linked to it are written in one transaction, never
  across an HTTP call. Two requests racing to create the same account collide on
  the unique ``ig_user_id``; the loser retries as an update, so one account and
  one token remain.
- Only usernames in ``OWNER_INSTAGRAM_USERNAMES`` and Django staff may sign in.
  The check uses ``/me``'s username and runs before anything is stored, so a
  refused person leaves no account, token or user behind.
- Connecting another account and invites never sign anyone in; an account
  connected through an invite is linked to no user.
- An imported token is validated against ``/me`` before anything is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import crypto, instagram, token_cache
from accounts.models import AccessToken, DataDeletionRequest, InstagramAccount, Invite
from accounts.services.refresh import MIN_TOKEN_AGE, safety_window
from accounts.services.tokens import token_store
from tokenagent.redaction import redact

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Instagram tokens live 60 days (instagram-api.md §3).
TOKEN_LIFETIME = timedelta(days=60)
SLUG_MAX_LENGTH = InstagramAccount._meta.get_field("slug").max_length
INVITE_DEFAULT_DAYS = 7
INVITE_MAX_DAYS = 30
_INVITE_SALT = "tokenagent.invite"
_RACE_RETRIES = 3


# --- Errors a person can act on ------------------------------------------------------------------


class ConnectError(Exception):
    """Base of the refusals below; the message is safe to show (no token)."""


class NotAnOwner(ConnectError):  # noqa: N818 (a refusal, named for what it says)
    """The Instagram account may not sign in to this agent."""

    def __init__(self, username: str, *, deactivated: bool = False) -> None:
        self.username = username
        self.deactivated = deactivated
        super().__init__(f"@{username} may not sign in to this agent")


class InviteError(ConnectError):
    """An invite link cannot be used; ``reason`` says why."""

    TAMPERED = "tampered"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invite link {reason}")


class SlugError(ConnectError):
    """A slug that is malformed or taken by another account."""


class TokenInvalid(ConnectError):  # noqa: N818
    """Instagram did not accept a token given to an import (``/me`` failed)."""

    def __init__(self, error: instagram.InstagramError, *, label: str = "") -> None:
        self.error = error
        self.label = label
        prefix = f"{shown_name(label)}: " if label else ""
        if isinstance(error, instagram.InstagramAuthError | instagram.InstagramPermissionError):
            what = "Instagram does not accept this token"
        elif isinstance(error, instagram.InstagramTransientError):
            what = "Instagram could not be asked about this token right now (try again)"
        else:
            what = "Instagram refused this token"
        super().__init__(f"{prefix}{what}: {error.describe()}")


class ImportConfigError(ConnectError):
    """An instatokend ``config.json`` that does not have the expected shape."""


class SignedRequestError(ConnectError):
    """A Meta ``signed_request`` that is missing, malformed, unsigned or forged."""


# --- Results -------------------------------------------------------------------------------------


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
    user: Any = None  # the Django user to sign in (sign-in only)


@dataclass(frozen=True)
class ProbedToken:
    """A token to store and what we know about its lifetime."""

    access_token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    refreshed: bool
    note: str


@dataclass(frozen=True)
class ImportResult:
    account: InstagramAccount
    created: bool
    note: str


@dataclass(frozen=True)
class RotateResult:
    rotated: int
    unreadable: list[str]


# --- The OAuth login -----------------------------------------------------------------------------


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


def owner_may_sign_in(*, username: str, account: InstagramAccount | None) -> bool:
    """Listed in ``OWNER_INSTAGRAM_USERNAMES`` (case-insensitive), or already linked
    to an active Django staff user."""
    if username.strip().lstrip("@").lower() in settings.OWNER_INSTAGRAM_USERNAMES:
        return True
    user = account.user if account is not None else None
    return bool(user is not None and user.is_staff and user.is_active)


def account_sign_in(*, login: InstagramLogin) -> ConnectResult:
    """The owner signs in: refuse non-owners before storing anything, then store
    the account and token and link a Django user, in one transaction. The caller
    signs the returned user in."""
    profile = login.profile
    existing = (
        InstagramAccount.objects.select_related("user").filter(ig_user_id=profile.user_id).first()
    )
    if not owner_may_sign_in(username=profile.username, account=existing):
        logger.warning("sign-in refused: @%s is not an owner; nothing stored", profile.username)
        raise NotAnOwner(profile.username)
    if existing is not None and existing.user is not None and not existing.user.is_active:
        logger.warning("sign-in refused: the user of @%s is deactivated", profile.username)
        raise NotAnOwner(profile.username, deactivated=True)

    def write() -> ConnectResult:
        account, created = _account_upsert(
            profile=profile, token=_probed_from_login(login), connected_by=None
        )
        user = _account_link_user(account=account)
        return ConnectResult(account=account, created=created, user=user)

    result = _retry_on_race(write)
    logger.info(
        "sign-in: @%s as %s (%s)",
        profile.username,
        result.account.slug,
        "new account" if result.created else "existing account updated",
    )
    return result


def account_connect(*, login: InstagramLogin, connected_by) -> ConnectResult:
    """A signed-in owner connects (or reconnects) an account. Nobody is signed in
    and no user is linked."""
    result = _retry_on_race(
        lambda: ConnectResult(
            *_account_upsert(
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
        account, created = _account_upsert(
            profile=login.profile, token=_probed_from_login(login), connected_by=invite.created_by
        )
        claimed = Invite.objects.filter(
            pk=invite.pk, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now, account=account)
        if claimed != 1:
            # Rolls back the account and token written above.
            raise InviteError(_invite_state(Invite.objects.filter(pk=invite.pk).first(), now))
        return ConnectResult(account=account, created=created)

    result = _retry_on_race(write)
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


def _retry_on_race(write: Callable[[], T]) -> T:
    """Run ``write`` in a transaction; when a concurrent request created the same
    account (or took the same slug) first, run it again, now as an update."""
    for attempt in range(_RACE_RETRIES):
        try:
            with transaction.atomic():
                return write()
        except IntegrityError:
            if attempt == _RACE_RETRIES - 1:
                raise
            logger.info("connect: a concurrent request stored the same account; retrying")
    raise AssertionError("unreachable")  # pragma: no cover


def _account_upsert(
    *,
    profile: instagram.Profile,
    token: ProbedToken,
    connected_by=None,
    slug: str | None = None,
    refresh_frequency: str | None = None,
) -> tuple[InstagramAccount, bool]:
    """Create or update the account keyed on ``profile.user_id`` and store its token.
    Must run inside a transaction."""
    account = (
        InstagramAccount.objects.select_for_update().filter(ig_user_id=profile.user_id).first()
    )
    created = account is None
    old_slug = None
    if account is None:
        account = InstagramAccount(
            ig_user_id=profile.user_id,
            slug=slug or _free_slug(_slug_from_username(profile.username)),
            connected_by=connected_by if _is_user(connected_by) else None,
        )
    elif slug and slug != account.slug:
        old_slug = account.slug
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
    if old_slug:
        transaction.on_commit(lambda: token_cache.invalidate(account, slugs=(old_slug,)))
    return account, created


def _is_user(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def _account_link_user(*, account: InstagramAccount):
    """The Django user who signs in with ``account``, created on first sign-in.
    Named after the stable Instagram id, so a renamed Instagram handle keeps its user."""
    if account.user_id is not None:
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


def shown_name(value: object, *, limit: int = 40) -> str:
    """An account name from a file or the command line, as it may be printed:
    characters a slug cannot hold become ``?``, long names are cut, token-like
    ones are redacted (a token pasted where a name belongs is never echoed)."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "?", str(value))
    if len(text) > limit:
        text = text[:limit] + "..."
    return redact(text)


# --- Slugs ---------------------------------------------------------------------------------------


def _slug_from_username(username: str) -> str:
    """Instagram handles use letters, digits, ``_`` and ``.``; slugs keep the first
    three and turn dots into hyphens."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", username.strip().lstrip("@").lower()).strip("-_")
    return slug[: SLUG_MAX_LENGTH - 4] or "account"


def _slug_taken(slug: str, *, exclude_pk: int | None = None) -> bool:
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


def slug_validate(*, slug: str, account: InstagramAccount | None = None) -> str:
    """A slug as typed by a person: letters, digits, ``-`` and ``_``, at most 64
    characters, not used by another account (case-insensitively). Returns it
    stripped; raises :class:`SlugError`."""
    slug = (slug or "").strip()
    if not slug:
        raise SlugError("The name must not be empty.")
    if len(slug) > SLUG_MAX_LENGTH:
        raise SlugError(f"The name must be at most {SLUG_MAX_LENGTH} characters.")
    try:
        validate_slug(slug)
    except ValidationError:
        raise SlugError(
            "The name may contain only letters, digits, hyphens and underscores."
        ) from None
    if _slug_taken(slug, exclude_pk=account.pk if account else None):
        raise SlugError(f"Another account is already served as {slug!r}.")
    return slug


# --- Owner actions -------------------------------------------------------------------------------


def account_disconnect(*, account: InstagramAccount, reason: str = "") -> InstagramAccount:
    """Stop serving and refreshing ``account`` and delete its token. The account row
    stays (its slug, history and settings) so it can be reconnected."""
    with transaction.atomic():
        AccessToken.objects.filter(account=account).delete()
        account.status = InstagramAccount.Status.DISCONNECTED
        if reason:
            account.last_error = redact(reason)[:2000]
            account.last_error_at = timezone.now()
        account.save()
        transaction.on_commit(lambda: token_cache.invalidate(account))
    logger.info("disconnected %s (@%s)", account.slug, account.username)
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
            transaction.on_commit(lambda: token_cache.invalidate(account, slugs=(old,)))
    except IntegrityError:
        account.slug = old
        raise SlugError(f"Another account is already served as {slug!r}.") from None
    logger.info("renamed %s to %s", old, slug)
    return account


def account_set_default(*, account: InstagramAccount) -> InstagramAccount:
    """Serve ``account`` at ``/token.json``, ``/token.js`` and ``/token``."""
    with transaction.atomic():
        previous = list(InstagramAccount.objects.filter(is_default=True).exclude(pk=account.pk))
        InstagramAccount.objects.filter(is_default=True).exclude(pk=account.pk).update(
            is_default=False
        )
        account.is_default = True
        account.save(update_fields=["is_default", "updated_at"])

        def _invalidate() -> None:
            for a in [*previous, account]:
                token_cache.invalidate(a)

        transaction.on_commit(_invalidate)
    return account


# --- Invites -------------------------------------------------------------------------------------


def invite_create(
    *, created_by, note: str = "", days: int = INVITE_DEFAULT_DAYS, now: datetime | None = None
) -> Invite:
    if not 1 <= days <= INVITE_MAX_DAYS:
        raise ConnectError(f"An invite lasts between 1 and {INVITE_MAX_DAYS} days.")
    now = now or timezone.now()
    invite = Invite.objects.create(
        note=note.strip()[:200],
        created_by=created_by if _is_user(created_by) else None,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    logger.info("invite %s created, valid for %s days", invite.pk, days)
    return invite


def invite_link_token(*, invite: Invite) -> str:
    """The signed part of the invite link (``/invite/<token>/``)."""
    return signing.Signer(salt=_INVITE_SALT).sign(invite.key)


def _invite_state(invite: Invite | None, now: datetime) -> str | None:
    if invite is None:
        return InviteError.UNKNOWN
    if invite.used_at is not None:
        return InviteError.USED
    if invite.expires_at <= now:
        return InviteError.EXPIRED
    return None


def invite_check(*, invite: Invite | None, now: datetime | None = None) -> Invite:
    """``invite`` if it can still be used; raises :class:`InviteError`."""
    reason = _invite_state(invite, now or timezone.now())
    if reason:
        raise InviteError(reason)
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


# --- Imports (STARTING_TOKEN, import_token, instatokend, the paste form) -------------------------


def token_validate(*, access_token: str, label: str = "") -> instagram.Profile:
    """``/me`` with ``access_token``: the profile, or :class:`TokenInvalid`."""
    access_token = (access_token or "").strip()
    if not access_token:
        raise TokenInvalid(instagram.InstagramError("the token is empty"), label=label)
    if any(c.isspace() for c in access_token):
        raise TokenInvalid(instagram.InstagramError("the token contains spaces"), label=label)
    try:
        return instagram.get_profile(access_token=access_token)
    except instagram.InstagramError as exc:
        raise TokenInvalid(exc, label=label) from None


def token_probe(*, access_token: str, now: datetime | None = None) -> ProbedToken:
    """Learn an imported token's lifetime: Instagram does not say when a token
    expires, but a refresh answers with a fresh 60 days (instagram-api.md §4).

    - refreshed: store what came back (the string may have changed);
    - refused as younger than 24 h: it expires about 60 days from its issue, so
      at least 59 days from now; the refresher waits its 24 h;
    - any other failure: expiry unknown; stored as expiring within the safety
      window and old enough, so the refresher tries at its next run (and the
      dashboard and /healthz show it as expiring until then).
    """
    now = now or timezone.now()
    try:
        grant = instagram.refresh_long_lived(access_token=access_token, now=now)
    except instagram.InstagramTokenTooYoungError:
        return ProbedToken(
            access_token=access_token,
            issued_at=now,
            expires_at=now + TOKEN_LIFETIME - MIN_TOKEN_AGE,
            refreshed=False,
            note="younger than 24 hours; the refresher takes over after that",
        )
    except instagram.InstagramError as exc:
        logger.warning("import: could not refresh the imported token: %s", exc.describe())
        return ProbedToken(
            access_token=access_token,
            issued_at=now - MIN_TOKEN_AGE,
            expires_at=now + safety_window(),
            refreshed=False,
            note=(
                "its expiry is unknown (refreshing it failed: "
                f"{redact(exc.describe())}); the refresher will try again at its next run"
            ),
        )
    return ProbedToken(
        access_token=grant.access_token,
        issued_at=now,
        expires_at=grant.expires_at,
        refreshed=True,
        note=f"refreshed; valid until {grant.expires_at:%Y-%m-%d}",
    )


@dataclass
class _Planned:
    label: str
    access_token: str = field(repr=False)
    slug: str | None
    profile: instagram.Profile | None = None
    probed: ProbedToken | None = None


def _plan_check_slugs(plans: list[_Planned]) -> None:
    """Refuse slugs that are malformed, repeated, or served for another account."""
    seen: dict[str, str] = {}
    for plan in plans:
        profile = plan.profile
        if plan.slug is None:
            continue
        other = InstagramAccount.objects.filter(slug__iexact=plan.slug).first()
        if other is not None and profile is not None and other.ig_user_id != profile.user_id:
            raise SlugError(
                f"{shown_name(plan.label)}: {shown_name(plan.slug)!r} is already the name of "
                f"@{other.username}; "
                "rename or disconnect that account first, or choose another name."
            )
        key = plan.slug.lower()
        if key in seen and profile is not None and seen[key] != profile.user_id:
            raise SlugError(f"the name {shown_name(plan.slug)!r} is used twice.")
        if profile is not None:
            seen[key] = profile.user_id


def accounts_import(
    *,
    tokens: list[tuple[str, str, str | None]],
    connected_by=None,
    make_default: bool = False,
    refresh_frequency: str | None = None,
) -> list[ImportResult]:
    """Import ``(label, token, slug or None)`` items, all or nothing.

    Every token is validated against ``/me`` and every slug checked before
    anything is stored; then each token's lifetime is probed (a refresh) and all
    accounts are stored in one transaction. An account already connected is
    updated in place (and renamed when a free slug is given)."""
    plans = []
    for label, token, slug in tokens:
        if slug is not None:
            slug = slug_validate_format(slug=slug)
        plans.append(_Planned(label=label, access_token=(token or "").strip(), slug=slug))
    for plan in plans:
        plan.profile = token_validate(access_token=plan.access_token, label=plan.label)
    _plan_check_slugs(plans)
    for plan in plans:
        plan.probed = token_probe(access_token=plan.access_token)

    def write() -> list[ImportResult]:
        results = []
        for plan in plans:
            account, created = _account_upsert(
                profile=plan.profile,
                token=plan.probed,
                connected_by=connected_by,
                slug=plan.slug,
                refresh_frequency=refresh_frequency,
            )
            results.append(ImportResult(account=account, created=created, note=plan.probed.note))
        if make_default and results and not InstagramAccount.objects.filter(is_default=True):
            first = results[0].account
            first.is_default = True
            first.save(update_fields=["is_default", "updated_at"])
        return results

    results = _retry_on_race(write)
    for r in results:
        logger.info(
            "imported @%s as %s (%s)", r.account.username, r.account.slug, r.note or "stored"
        )
    return results


def account_import_token(
    *, access_token: str, slug: str | None = None, connected_by=None, make_default: bool = False
) -> ImportResult:
    """Import one token (the paste form, ``import_token``, ``STARTING_TOKEN``)."""
    return accounts_import(
        tokens=[("token", access_token, slug or None)],
        connected_by=connected_by,
        make_default=make_default,
    )[0]


def slug_validate_format(*, slug: str) -> str:
    """Format only (no uniqueness): for slugs checked against the database later."""
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
    return slug


# instatokend's refresh_freq values; "test" (every 5 minutes) has no equivalent.
_INSTATOKEND_FREQUENCIES = {"daily": "daily", "weekly": "weekly", "monthly": "monthly"}
_INSTATOKEND_SETTINGS = frozenset({"port", "refresh_freq"})


@dataclass(frozen=True)
class InstatokendConfig:
    accounts: list[tuple[str, str]] = field(repr=False)  # (name, token)
    refresh_frequency: str | None
    notes: list[str]


def instatokend_config_parse(*, text: str) -> InstatokendConfig:
    """instatokend's ``config.json``: ``port``, ``refresh_freq`` and one
    ``{"token": ...}`` object per account name. Raises :class:`ImportConfigError`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportConfigError(
            f"config.json is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    except RecursionError:
        raise ImportConfigError("config.json is nested too deeply to be instatokend's") from None
    if not isinstance(data, dict):
        raise ImportConfigError("config.json must hold one JSON object.")
    notes = []
    freq = data.get("refresh_freq")
    frequency = None
    if freq is not None:
        frequency = (
            _INSTATOKEND_FREQUENCIES.get(freq.strip().lower()) if isinstance(freq, str) else None
        )
        if frequency is None:
            notes.append(
                f"refresh_freq {shown_name(freq, limit=20)!r} has no equivalent here; "
                f"the agent's REFRESH_FREQUENCY ({settings.REFRESH_FREQUENCY}) applies"
            )
    if "port" in data:
        notes.append("port is ignored: the agent serves on its own address")
    accounts = []
    for name, value in data.items():
        if name in _INSTATOKEND_SETTINGS:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("token"), str):
            raise ImportConfigError(
                f'{shown_name(name)!r}: expected {{"token": "..."}} for an account, '
                "found something else."
            )
        if not value["token"].strip():
            raise ImportConfigError(f"{shown_name(name)!r}: the token is empty.")
        accounts.append((str(name), value["token"].strip()))
    if not accounts:
        raise ImportConfigError('config.json names no account (no {"token": ...} object).')
    return InstatokendConfig(accounts=accounts, refresh_frequency=frequency, notes=notes)


def accounts_import_instatokend(*, config: InstatokendConfig) -> list[ImportResult]:
    """Import every account of an instatokend config, each under its account name."""
    for name, _ in config.accounts:
        slug_validate_format(slug=name)
    return accounts_import(
        tokens=[(name, token, name) for name, token in config.accounts],
        refresh_frequency=config.refresh_frequency,
    )


def starting_token_import(*, access_token: str) -> ImportResult | None:
    """Token Agent's ``STARTING_TOKEN``, imported once: None when the token is
    already stored for an account (so each deploy's release phase can run this).
    The account becomes the default when there is none yet."""
    access_token = (access_token or "").strip()
    if not access_token:
        return None
    for token in AccessToken.objects.all():
        try:
            if hmac.compare_digest(token.value.encode(), access_token.encode()):
                return None
        except crypto.InvalidToken:
            continue
    profile = token_validate(access_token=access_token, label="STARTING_TOKEN")
    existing = InstagramAccount.objects.filter(ig_user_id=profile.user_id).first()
    if (
        existing is not None
        and existing.status == InstagramAccount.Status.ACTIVE
        and AccessToken.objects.filter(account=existing, expires_at__gt=timezone.now()).exists()
    ):
        # Connected and healthy already (its token was refreshed since): keep it.
        return None
    return account_import_token(access_token=access_token, make_default=True)


# --- Meta's callbacks (instagram-api.md §10) -----------------------------------------------------


def _b64url_decode(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SignedRequestError("signed_request is not base64url") from None


def meta_signed_request_parse(*, signed_request: str | None, app_secret: str) -> dict:
    """Verify ``<sig>.<payload>`` (base64url, no padding): HMAC-SHA256 under the app
    secret over the payload segment exactly as received, compared in constant time;
    only ``HMAC-SHA256`` is accepted. Returns the payload with ``user_id`` as str."""
    if not app_secret:
        raise SignedRequestError("INSTAGRAM_APP_SECRET is not set; cannot verify")
    if not signed_request or not isinstance(signed_request, str):
        raise SignedRequestError("signed_request is missing")
    parts = signed_request.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise SignedRequestError("signed_request is not <signature>.<payload>")
    sig_segment, payload_segment = parts
    signature = _b64url_decode(sig_segment)
    try:
        message = payload_segment.encode("ascii")
    except UnicodeEncodeError:
        raise SignedRequestError("signed_request is not base64url") from None
    expected = hmac.new(app_secret.encode(), message, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise SignedRequestError("signed_request signature does not match")
    try:
        payload = json.loads(_b64url_decode(payload_segment))
    except (ValueError, UnicodeDecodeError):
        raise SignedRequestError("signed_request payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SignedRequestError("signed_request payload is not an object")
    if str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise SignedRequestError("signed_request uses an unsupported algorithm")
    user_id = payload.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or not str(user_id).strip():
        raise SignedRequestError("signed_request has no user_id")
    if "\x00" in str(user_id):  # PostgreSQL refuses NUL in a query (a 500 otherwise)
        raise SignedRequestError("signed_request has an invalid user_id")
    payload["user_id"] = str(user_id).strip()
    return payload


def _accounts_for_meta_user(user_id: str):
    # Which of the two ids Meta sends is unconfirmed: match both.
    return InstagramAccount.objects.filter(Q(ig_user_id=user_id) | Q(app_scoped_id=user_id))


def account_deauthorize(*, ig_user_id: str) -> int:
    """The person removed the app on Instagram: stop refreshing and serving, delete
    the token, mark the account disconnected. Returns how many accounts matched."""
    accounts = list(_accounts_for_meta_user(ig_user_id))
    for account in accounts:
        account_disconnect(
            account=account,
            reason="The account removed this app on Instagram (deauthorized); "
            "connect it again to serve its feed.",
        )
    logger.info("deauthorize callback: %d account(s) disconnected", len(accounts))
    return len(accounts)


def account_data_delete(*, ig_user_id: str) -> DataDeletionRequest:
    """Meta's data-deletion request: delete the matching accounts with their tokens
    and history, and the sign-in users made for them (never staff), then record
    the request for its public status page."""
    now = timezone.now()
    with transaction.atomic():
        accounts = list(_accounts_for_meta_user(ig_user_id).select_related("user"))
        users = [
            a.user
            for a in accounts
            if a.user is not None and not a.user.is_staff and not a.user.is_superuser
        ]
        for account in accounts:
            account.delete()  # token and refresh history cascade; the cache is invalidated
        for user in users:
            user.delete()
        request = DataDeletionRequest.objects.create(
            ig_user_id=ig_user_id[:64],
            received_at=now,
            completed_at=timezone.now(),
            accounts_deleted=len(accounts),
        )
    logger.info("data deletion %s: %d account(s) deleted", request.confirmation_code, len(accounts))
    return request


# --- Key rotation --------------------------------------------------------------------------------


def tokens_rotate_key() -> RotateResult:
    """Re-encrypt every stored token under the newest ``TOKEN_ENCRYPTION_KEY``.
    Each row is rewritten only if it did not change meanwhile (a refresh wins)."""
    rotated = 0
    unreadable = []
    for token in AccessToken.objects.select_related("account").order_by("pk"):
        try:
            new = crypto.rotate(token.ciphertext)
        except crypto.InvalidToken:
            unreadable.append(token.account.slug)
            continue
        with transaction.atomic():
            changed = AccessToken.objects.filter(pk=token.pk, ciphertext=token.ciphertext).update(
                ciphertext=new
            )
            account = token.account
            # Served entries hold the ciphertext: drop them, or an entry written under
            # the old key outlives that key's removal.
            transaction.on_commit(lambda a=account: token_cache.invalidate(a))
        rotated += changed
    logger.info("rotated %d token(s); %d unreadable", rotated, len(unreadable))
    return RotateResult(rotated=rotated, unreadable=unreadable)
