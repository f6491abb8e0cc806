"""Reads for the owner's pages: the dashboard's accounts (with their feeds),
invites, and the setup checklist (computed live from settings and the database,
never showing a secret)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from accounts import cors, crypto
from accounts.models import AccessToken, InstagramAccount, Invite
from accounts.refresh_policy import account_health
from accounts.selectors.feed_status import FeedStatus, feed_statuses
from accounts.selectors.refresh import heartbeat_status
from accounts.services.invites import invite_link_token

# --- Accounts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardAccount:
    """One account as the dashboard shows it: never the token, only its mask."""

    account: InstagramAccount
    masked_token: str | None
    token_expires_at: datetime | None
    health: str
    feed: FeedStatus  # age, posts, stale, last error (redacted)


def _row(
    account: InstagramAccount, token: AccessToken | None, feed: FeedStatus, now: datetime
) -> DashboardAccount:
    return DashboardAccount(
        account=account,
        masked_token=token.masked if token is not None else None,
        token_expires_at=token.expires_at if token is not None else None,
        health=account_health(account=account, token=token, now=now),
        feed=feed,
    )


def dashboard_accounts(*, now: datetime | None = None) -> list[DashboardAccount]:
    """Every account, the default first, then by slug."""
    now = now or timezone.now()
    accounts = list(InstagramAccount.objects.order_by("-is_default", "slug"))
    tokens = {t.account_id: t for t in AccessToken.objects.filter(account__in=accounts)}
    feeds = feed_statuses(accounts=accounts, now=now)
    return [_row(a, tokens.get(a.pk), feeds[a.pk], now) for a in accounts]


def dashboard_account(*, slug: str, now: datetime | None = None) -> DashboardAccount | None:
    account = InstagramAccount.objects.filter(slug=slug).first()
    if account is None:
        return None
    now = now or timezone.now()
    token = AccessToken.objects.filter(account=account).first()
    return _row(account, token, feed_statuses(accounts=[account], now=now)[account.pk], now)


# --- Invites -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteRow:
    invite: Invite
    state: str  # "active", "used" or "expired"
    link_path: str | None  # only while it can be used


def invites_list(*, now: datetime | None = None, limit: int = 50) -> list[InviteRow]:
    now = now or timezone.now()
    rows = []
    for invite in Invite.objects.select_related("account").order_by("-created_at")[:limit]:
        if invite.used_at is not None:
            state = "used"
        elif invite.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        link = (
            reverse("accounts:invite", args=[invite_link_token(invite=invite)])
            if state == "active"
            else None
        )
        rows.append(InviteRow(invite=invite, state=state, link_path=link))
    return rows


# --- Setup checklist -----------------------------------------------------------------------------

OK = "ok"
INFO = "info"
WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True)
class CheckItem:
    key: str
    label: str
    level: str  # ok / info / warning / error
    detail: str

    @property
    def ok(self) -> bool:
        return self.level in (OK, INFO)


@dataclass(frozen=True)
class MetaUrls:
    """What to paste into Meta's dashboard (Business login settings)."""

    redirect_uri: str
    deauthorize: str
    data_deletion: str


def setup_meta_urls(*, origin: str) -> MetaUrls:
    """``origin`` is ``scheme://host`` as the visitor's browser sees the agent; the
    redirect URI is built exactly as the sign-in builds it."""
    origin = origin.rstrip("/")
    return MetaUrls(
        redirect_uri=origin + reverse("accounts:oauth-callback"),
        deauthorize=origin + reverse("accounts:meta-deauthorize"),
        data_deletion=origin + reverse("accounts:meta-data-deletion"),
    )


def _check_instagram_app() -> CheckItem:
    label = "Instagram app (INSTAGRAM_APP_ID, INSTAGRAM_APP_SECRET)"
    if settings.SANDBOX_ENABLED:
        return CheckItem(
            "instagram_app",
            label,
            WARNING,
            "Not set: the built-in sandbox Instagram is used instead (DEBUG is on). "
            "Set both from Meta's dashboard to connect real accounts.",
        )
    missing = [
        name
        for name in ("INSTAGRAM_APP_ID", "INSTAGRAM_APP_SECRET")
        if not getattr(settings, name, "")
    ]
    if missing:
        return CheckItem(
            "instagram_app",
            label,
            ERROR,
            f"Missing {' and '.join(missing)}: nobody can sign in or connect an account.",
        )
    return CheckItem("instagram_app", label, OK, "Both are set.")


def _check_owners() -> CheckItem:
    label = "Owners (OWNER_INSTAGRAM_USERNAMES)"
    n = len(settings.OWNER_INSTAGRAM_USERNAMES)
    if n:
        return CheckItem(
            "owners", label, OK, f"{n} Instagram username{'s' if n != 1 else ''} may sign in."
        )
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exists()
    if staff:
        return CheckItem(
            "owners",
            label,
            WARNING,
            "Not set: only Django staff users can sign in (with a password at /admin/).",
        )
    return CheckItem(
        "owners",
        label,
        ERROR,
        "Not set: nobody can sign in. Set it to your Instagram username "
        "(several separated by commas).",
    )


def _check_allowed_domains() -> CheckItem:
    label = "Allowed sites (ALLOWED_DOMAINS)"
    allow = cors.global_allow_list()
    if not allow.restricted:
        return CheckItem(
            "allowed_domains",
            label,
            ERROR,
            "Not set: any website can load your tokens. Set it to your sites' host names.",
        )
    if allow.invalid:
        return CheckItem(
            "allowed_domains",
            label,
            WARNING,
            f"{len(allow.invalid)} entr{'ies' if len(allow.invalid) != 1 else 'y'} "
            "match nothing (not a host name or origin).",
        )
    return CheckItem("allowed_domains", label, OK, "Set: only those sites get the tokens.")


def _check_webhook_secret() -> CheckItem:
    label = "Refresh hook secret (WEBHOOK_SECRET)"
    if settings.WEBHOOK_SECRET:
        return CheckItem("webhook_secret", label, OK, "Set: POST /hooks/refresh/ is enabled.")
    return CheckItem(
        "webhook_secret",
        label,
        INFO,
        "Not set (optional): needed only if an external scheduler should call "
        "POST /hooks/refresh/.",
    )


def _check_encryption_key() -> CheckItem:
    label = "Token encryption key (TOKEN_ENCRYPTION_KEY)"
    try:
        crypto.encrypt("setup-check")
    except ImproperlyConfigured:
        return CheckItem(
            "token_encryption_key",
            label,
            ERROR,
            "Invalid: it must be one or more comma-separated Fernet keys.",
        )
    keys = [k for k in settings.TOKEN_ENCRYPTION_KEY.split(",") if k.strip()]
    if keys:
        return CheckItem(
            "token_encryption_key",
            label,
            OK,
            f"{len(keys)} key{'s' if len(keys) != 1 else ''}; tokens are encrypted with the "
            "first (rotate with manage.py rotate_token_key).",
        )
    return CheckItem(
        "token_encryption_key",
        label,
        WARNING,
        "Not set: tokens are encrypted with a key derived from SECRET_KEY, so changing "
        "SECRET_KEY makes them unreadable. Set your own key to keep them independent.",
    )


def _check_alerts() -> CheckItem:
    label = "Alerts (ALERT_EMAIL, ALERT_WEBHOOK_URL)"
    email, hook = bool(settings.ALERT_EMAIL), bool(settings.ALERT_WEBHOOK_URL)
    if not email and not hook:
        return CheckItem(
            "alerts",
            label,
            WARNING,
            "Not set: nobody is told when a token cannot be refreshed or is about to expire.",
        )
    if email and settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        return CheckItem(
            "alerts",
            label,
            WARNING,
            "ALERT_EMAIL is set but EMAIL_URL is not: alert emails only go to the log.",
        )
    channels = " and ".join(n for n, on in (("email", email), ("webhook", hook)) if on)
    return CheckItem("alerts", label, OK, f"Alerts go out by {channels}.")


def _check_database() -> CheckItem:
    label = "Database (DATABASE_URL)"
    if connection.vendor == "sqlite":
        if settings.DEBUG:
            return CheckItem("database", label, INFO, "SQLite: fine for development.")
        return CheckItem(
            "database",
            label,
            WARNING,
            "SQLite with DEBUG off: fine on one machine with a lasting disk, but on Heroku "
            "the disk is wiped at every restart and the tokens with it. Add Heroku Postgres.",
        )
    return CheckItem("database", label, OK, f"{connection.vendor.capitalize()}.")


def _check_redis() -> CheckItem:
    label = "Broker and cache (REDIS_URL)"
    if settings.REDIS_URL:
        return CheckItem("redis", label, OK, "Redis is the Celery broker and the cache.")
    if not settings.EMBEDDED_WORKER:
        return CheckItem(
            "redis",
            label,
            WARNING,
            "EMBEDDED_WORKER is off but REDIS_URL is not set: a worker dyno cannot read the "
            "tasks queued on the web dyno's own disk. Add Heroku Key-Value Store, or set "
            "EMBEDDED_WORKER=True (the one-dyno formation).",
        )
    if connection.vendor == "postgresql":
        return CheckItem(
            "redis",
            label,
            OK,
            "Not needed: the cache is in PostgreSQL, shared by every process and dyno; the "
            "worker runs in this dyno, its queue on the dyno's disk.",
        )
    return CheckItem(
        "redis",
        label,
        INFO if settings.DEBUG else WARNING,
        "Not set: the embedded broker and file cache are used. Fine on one machine; on "
        "Heroku add Heroku Postgres, which then holds the cache.",
    )


def _check_heartbeat(now: datetime) -> CheckItem:
    label = "Refresher (Celery worker with beat)"
    hb = heartbeat_status(now=now)
    if hb.last_run is None:
        return CheckItem(
            "heartbeat",
            label,
            ERROR,
            "Has never run: tokens are not being refreshed. Start the worker process.",
        )
    ago = timesince(hb.last_run, now)
    if hb.stale:
        return CheckItem(
            "heartbeat",
            label,
            ERROR,
            f"Last ran {ago} ago, it should run every {hb.period_seconds} s: tokens are not "
            "being refreshed. Check the worker process.",
        )
    return CheckItem("heartbeat", label, OK, f"Last ran {ago} ago.")


def _check_sandbox() -> CheckItem | None:
    if not settings.SANDBOX_ENABLED:
        return None
    return CheckItem(
        "sandbox",
        "Sandbox",
        WARNING,
        "On: sign-in and tokens come from the built-in fake Instagram, not the real one.",
    )


def _check_accounts() -> CheckItem:
    label = "Connected accounts"
    n = InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE).count()
    if n:
        return CheckItem("accounts", label, OK, f"{n} active.")
    return CheckItem("accounts", label, INFO, "None yet: sign in to connect your account.")


def setup_checklist(*, now: datetime | None = None) -> list[CheckItem]:
    """The setup page's checklist, computed now."""
    now = now or timezone.now()
    items = [
        _check_sandbox(),
        _check_instagram_app(),
        _check_owners(),
        _check_allowed_domains(),
        _check_heartbeat(now),
        _check_encryption_key(),
        _check_alerts(),
        _check_webhook_secret(),
        _check_database(),
        _check_redis(),
        _check_accounts(),
    ]
    return [i for i in items if i is not None]


def setup_warnings(*, checklist: list[CheckItem]) -> list[CheckItem]:
    """The items that need attention, errors first."""
    order = {ERROR: 0, WARNING: 1}
    return sorted((i for i in checklist if i.level in order), key=lambda i: (order[i.level], i.key))
