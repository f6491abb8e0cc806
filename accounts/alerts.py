"""Tell the owner before anything breaks: email (``ALERT_EMAIL``, Django's mail
backend from ``EMAIL_URL``) and/or a JSON POST to ``ALERT_WEBHOOK_URL`` with a
Slack-compatible ``text`` field.

Conditions: a refresh failed for good (incl. needs_reconnect), a token expires
within the safety window, the refresher's heartbeat stopped. Each condition is an
:class:`~accounts.models.AlertState` row keyed by what it is about; it alerts once,
and again only when its fingerprint changes, after it was cleared and came back,
or after ``ALERT_REPEAT_SECONDS`` (a day). Delivery runs in the ``send_alert``
task (retried with backoff); if the broker cannot take it, delivery is tried
inline. A delivery failure is logged, never raised into a refresh.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from accounts.models import AccessToken, AlertState, InstagramAccount
from accounts.refresh_policy import heartbeat_stale_after, safety_window
from accounts.selectors.refresh import heartbeat_is_stale, heartbeat_last
from accounts.tasks import send_alert as send_alert_task
from tokenagent.redaction import redact

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "heartbeat"
EMAIL = "email"
WEBHOOK = "webhook"
WEBHOOK_TIMEOUT = (5.0, 10.0)
EMAIL_TIMEOUT = 10


class AlertDeliveryError(Exception):
    """One channel could not deliver an alert (message carries no URL or secret)."""


def refresh_failed_key(account: InstagramAccount) -> str:
    return f"refresh-failed:{account.pk}"


def expiring_key(account: InstagramAccount) -> str:
    return f"expiring:{account.pk}"


def alert_channels() -> list[str]:
    channels = []
    if settings.ALERT_EMAIL:
        channels.append(EMAIL)
    if settings.ALERT_WEBHOOK_URL:
        channels.append(WEBHOOK)
    return channels


# --- Delivery -------------------------------------------------------------------------------


def alert_deliver(*, channel: str, subject: str, body: str) -> None:
    """Send one alert over one channel now. Raises :class:`AlertDeliveryError`."""
    subject, body = redact(subject), redact(body)
    if channel == EMAIL:
        try:
            connection = mail.get_connection(timeout=EMAIL_TIMEOUT)
            mail.send_mail(
                subject,
                body,
                settings.DEFAULT_FROM_EMAIL,
                list(settings.ALERT_EMAIL),
                connection=connection,
            )
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertDeliveryError(f"email delivery failed: {type(exc).__name__}") from None
    elif channel == WEBHOOK:
        try:
            resp = requests.post(
                settings.ALERT_WEBHOOK_URL,
                json={"text": f"{subject}\n{body}"},
                timeout=WEBHOOK_TIMEOUT,
            )
        except requests.RequestException as exc:
            # str(exc) names the URL, which is itself a secret for Slack webhooks.
            raise AlertDeliveryError(f"webhook delivery failed: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise AlertDeliveryError(f"webhook delivery failed: HTTP {resp.status_code}")
    else:
        raise ValueError(f"unknown alert channel {channel!r}")


def _deliver_inline(*, key: str, channel: str, subject: str, body: str) -> None:
    try:
        alert_deliver(channel=channel, subject=subject, body=body)
    except AlertDeliveryError as exc:
        logger.error("alert %s not delivered by %s: %s", key, channel, exc)
        alert_delivery_failed(key=key)


def _dispatch(*, key: str, subject: str, body: str, inline: bool) -> None:
    channels = alert_channels()
    if not channels:
        logger.warning("ALERT (no ALERT_EMAIL or ALERT_WEBHOOK_URL set) %s: %s", subject, body)
        return
    for channel in channels:
        if inline:
            _deliver_inline(key=key, channel=channel, subject=subject, body=body)
            continue
        try:
            send_alert_task.delay(key=key, channel=channel, subject=subject, body=body)
        except (BrokerOperationalError, OSError) as exc:
            logger.warning("cannot queue alert %s (%s); delivering inline", key, exc)
            _deliver_inline(key=key, channel=channel, subject=subject, body=body)


def alert_delivery_failed(*, key: str) -> None:
    """Delivery gave up: forget that it was sent, so the next check raises it again."""
    AlertState.objects.filter(key=key).update(last_sent_at=None)


# --- Dedup ----------------------------------------------------------------------------------


def alert_raise(
    *,
    key: str,
    fingerprint: str,
    subject: str,
    body: str,
    now: datetime | None = None,
    inline: bool = False,
) -> bool:
    """Raise a condition; returns True when an alert goes out.

    The send is claimed with one conditional UPDATE, so two processes raising the
    same condition at once send it once. Queued with ``on_commit`` (nothing is sent
    for a transaction that rolls back); ``inline`` delivers in this process, for
    the heartbeat alert whose worker is the suspect."""
    now = now or timezone.now()
    fingerprint = fingerprint[:200]
    repeat_before = now - timedelta(seconds=settings.ALERT_REPEAT_SECONDS)
    AlertState.objects.get_or_create(key=key)
    claimed = (
        AlertState.objects.filter(key=key)
        .filter(
            Q(last_sent_at__isnull=True)
            | Q(last_sent_at__lte=repeat_before)
            | Q(cleared_at__isnull=False)
            | ~Q(fingerprint=fingerprint)
        )
        .update(fingerprint=fingerprint, last_sent_at=now, cleared_at=None)
    )
    if not claimed:
        return False
    logger.warning("alert %s: %s", key, subject)
    if inline:
        _dispatch(key=key, subject=subject, body=body, inline=True)
    else:
        transaction.on_commit(lambda: _dispatch(key=key, subject=subject, body=body, inline=False))
    return True


def alert_clear(*, key: str, now: datetime | None = None) -> None:
    """The condition is over; the next time it happens it alerts again at once."""
    alerts_clear(keys=[key], now=now)


def alerts_clear(*, keys: list[str], now: datetime | None = None) -> None:
    AlertState.objects.filter(key__in=keys, cleared_at__isnull=True).update(
        cleared_at=now or timezone.now()
    )


# --- The conditions -------------------------------------------------------------------------


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def agent_url(path: str) -> str | None:
    """``path`` on the agent as an absolute URL, when settings name the agent's
    address (an exact ``CSRF_TRUSTED_ORIGINS`` entry, else the first specific
    ``ALLOWED_HOSTS`` name); None when they do not. Alerts go out from the worker,
    outside any request, so the Host header is no help."""
    for origin in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in origin:
            return origin.rstrip("/") + path
    scheme = "https" if settings.SECURE_SSL_REDIRECT else "http"
    for host in settings.ALLOWED_HOSTS:
        if host and host[0] not in ".*" and host not in _LOOPBACK_HOSTS:
            return f"{scheme}://{host}{path}"
    return None


def _reconnect_text(account: InstagramAccount) -> str:
    """What needs_reconnect means for the websites: the token is no longer served."""
    path = reverse("accounts:account", args=[account.slug])
    where = agent_url(path) or f"the agent's page {path}"
    urls = ", ".join(
        reverse(name, args=[account.slug])
        for name in ("accounts:token-json", "accounts:token-js", "accounts:token-plain")
    )
    return (
        "Instagram no longer accepts this account's token, so it cannot be refreshed "
        f"and is no longer served: its token URLs ({urls}) answer an error (the .js "
        "sets the global to null), and feeds on your websites that use it stop showing "
        f"posts until you reconnect it at {where} (sign in to Instagram again)."
    )


def alert_refresh_failed(
    *,
    account: InstagramAccount,
    error: Exception,
    needs_reconnect: bool,
    attempts: int | None = None,
) -> bool:
    code = getattr(error, "code", None)
    subcode = getattr(error, "subcode", None)
    description = error.describe() if hasattr(error, "describe") else str(error)
    if needs_reconnect:
        subject = f"tokenagent: @{account.username} ({account.slug}) must be reconnected"
        what, expiry = _reconnect_text(account), ""
    else:
        subject = f"tokenagent: refreshing @{account.username} ({account.slug}) failed"
        tries = f" after {attempts} attempts" if attempts else ""
        what = (
            f"The refresh failed{tries} and will be tried again later by the schedule. "
            "If this keeps happening, check the agent's configuration and Instagram's status."
        )
        token = AccessToken.objects.filter(account=account).only("expires_at").first()
        expiry = (
            f"\nThe current token keeps being served until it expires on "
            f"{token.expires_at:%Y-%m-%d %H:%M} UTC."
            if token
            else "\nThe account has no stored token."
        )
    body = f"{what}\n\nInstagram said: {description}{expiry}"
    return alert_raise(
        key=refresh_failed_key(account),
        fingerprint=f"{'reconnect' if needs_reconnect else 'failed'}:{type(error).__name__}:"
        f"{code}:{subcode}",
        subject=subject,
        body=body,
    )


def alerts_check_expiring(
    *, now: datetime, about_to_refresh: set[int] | frozenset = frozenset()
) -> int:
    """Alert for each token that expires within the safety window (or expired in
    the last week), and clear the condition for every other account. Accounts in
    ``about_to_refresh`` (due and queued by this very tick) get their refresh
    first: if it fails, the next tick alerts. Returns how many alerts went out."""
    window = safety_window()
    tokens = (
        AccessToken.objects.filter(
            expires_at__lte=now + window,
            expires_at__gt=now - timedelta(days=7),
        )
        .exclude(account__status=InstagramAccount.Status.DISCONNECTED)
        .select_related("account")
    )
    sent = 0
    keys = []
    for token in tokens:
        account = token.account
        key = expiring_key(account)
        keys.append(key)
        if account.pk in about_to_refresh:
            continue
        expired = token.expires_at <= now
        if expired:
            subject = f"tokenagent: the token of @{account.username} ({account.slug}) has expired"
            what = "Websites using it no longer get a working token. Reconnect the account."
        else:
            left = token.expires_at - now
            subject = (
                f"tokenagent: the token of @{account.username} ({account.slug}) "
                f"expires in {left.days} days"
            )
            what = (
                "Refreshing it has not succeeded; if it is not refreshed before then, "
                "the feed on your websites stops working."
            )
        body = (
            f"{what}\nExpiry: {token.expires_at:%Y-%m-%d %H:%M} UTC. "
            f"Account status: {account.get_status_display()}."
            + (f"\nLast error: {account.last_error}" if account.last_error else "")
        )
        sent += alert_raise(
            key=key,
            fingerprint=f"{'expired' if expired else 'expiring'}:{token.expires_at.isoformat()}",
            subject=subject,
            body=body,
            now=now,
        )
    AlertState.objects.filter(key__startswith="expiring:", cleared_at__isnull=True).exclude(
        key__in=keys
    ).update(cleared_at=now)
    return sent


def alerts_check_heartbeat(*, now: datetime | None = None) -> bool:
    """Raise the heartbeat-stopped alert when the refresher has not run for more
    than twice its period, clear it when it runs. Called by ``/healthz`` and the
    ``refresh_tokens`` command (the periodic job cannot report its own death);
    delivered inline because the worker is the suspect. A fresh install whose
    accounts are younger than that limit does not alert yet."""
    now = now or timezone.now()
    if not heartbeat_is_stale(now=now):
        alert_clear(key=HEARTBEAT_KEY, now=now)
        return False
    limit = heartbeat_stale_after()
    last = heartbeat_last()
    if last is None and not InstagramAccount.objects.filter(created_at__lt=now - limit).exists():
        return False
    since = f"{last.ran_at:%Y-%m-%d %H:%M} UTC" if last else "never"
    body = (
        f"The periodic refresh job last ran: {since}. It should run every "
        f"{settings.REFRESH_TICK_SECONDS // 60 or 1} minutes. Tokens are not being refreshed "
        "until the Celery worker with beat runs again (check the worker process / dyno), "
        "or run `python manage.py refresh_tokens` from a scheduler."
    )
    return alert_raise(
        key=HEARTBEAT_KEY,
        fingerprint=f"stopped:{last.ran_at.isoformat() if last else 'never'}",
        subject="tokenagent: the token refresher has stopped",
        body=body,
        now=now,
        inline=True,
    )
