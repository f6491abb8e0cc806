"""Importing tokens that exist already: ``STARTING_TOKEN``, ``import_token``, the
paste form and instatokend's ``config.json`` (PRODUCT.md "Import").

Every token is validated against ``/me`` and every name checked before anything
is stored; the lifetime is then learned with one refresh, and all accounts of one
import are stored in one transaction (all or nothing).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from accounts import crypto, instagram
from accounts.models import AccessToken, InstagramAccount
from accounts.refresh_policy import MIN_TOKEN_AGE, safety_window
from accounts.services.accounts import (
    ProbedToken,
    SlugError,
    account_upsert,
    retry_on_race,
    shown_name,
    slug_validate,
)
from accounts.services.errors import ConnectError
from tokenagent.redaction import redact

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

# Instagram tokens live 60 days (docs/instagram.md §3).
TOKEN_LIFETIME = timedelta(days=60)


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


@dataclass(frozen=True)
class ImportResult:
    account: InstagramAccount
    created: bool
    note: str


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
    expires, but a refresh answers with a fresh 60 days (docs/instagram.md §4).

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


@dataclass(frozen=True)
class _Planned:
    label: str
    access_token: str = field(repr=False)
    slug: str | None
    profile: instagram.Profile


def _plan_check_slugs(plans: list[_Planned]) -> None:
    """Refuse slugs that are malformed, repeated, or served for another account."""
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.slug is None:
            continue
        other = InstagramAccount.objects.filter(slug__iexact=plan.slug).first()
        if other is not None and other.ig_user_id != plan.profile.user_id:
            raise SlugError(
                f"{shown_name(plan.label)}: {shown_name(plan.slug)!r} is already the name of "
                f"@{other.username}; "
                "rename or disconnect that account first, or choose another name."
            )
        key = plan.slug.lower()
        if key in seen and seen[key] != plan.profile.user_id:
            raise SlugError(f"the name {shown_name(plan.slug)!r} is used twice.")
        seen[key] = plan.profile.user_id


def accounts_import(
    *,
    tokens: list[tuple[str, str, str | None]],
    connected_by: User | AnonymousUser | None = None,
    make_default: bool = False,
    refresh_frequency: str | None = None,
) -> list[ImportResult]:
    """Import ``(label, token, slug or None)`` items, all or nothing.

    Every token is validated against ``/me`` and every slug checked before
    anything is stored; then each token's lifetime is probed (a refresh) and all
    accounts are stored in one transaction. An account already connected is
    updated in place (and renamed when a free slug is given)."""
    items = []
    for label, token, slug in tokens:
        if slug is not None:
            slug = slug_validate(slug=slug, unique=False)
        items.append((label, (token or "").strip(), slug))
    plans = [
        _Planned(
            label=label,
            access_token=token,
            slug=slug,
            profile=token_validate(access_token=token, label=label),
        )
        for label, token, slug in items
    ]
    _plan_check_slugs(plans)
    probed = [token_probe(access_token=plan.access_token) for plan in plans]

    def write() -> list[ImportResult]:
        results = []
        for plan, token in zip(plans, probed, strict=True):
            account, created = account_upsert(
                profile=plan.profile,
                token=token,
                connected_by=connected_by,
                slug=plan.slug,
                refresh_frequency=refresh_frequency,
            )
            results.append(ImportResult(account=account, created=created, note=token.note))
        if make_default and results and not InstagramAccount.objects.filter(is_default=True):
            first = results[0].account
            first.is_default = True
            first.save(update_fields=["is_default", "updated_at"])
        return results

    results = retry_on_race(write)
    for r in results:
        logger.info(
            "imported @%s as %s (%s)", r.account.username, r.account.slug, r.note or "stored"
        )
    return results


def account_import_token(
    *,
    access_token: str,
    slug: str | None = None,
    connected_by: User | AnonymousUser | None = None,
    make_default: bool = False,
) -> ImportResult:
    """Import one token (the paste form, ``import_token``, ``STARTING_TOKEN``)."""
    return accounts_import(
        tokens=[("token", access_token, slug or None)],
        connected_by=connected_by,
        make_default=make_default,
    )[0]


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
        slug_validate(slug=name, unique=False)
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
