"""When feeds are read, and who hears about old ones: beat's fan-out of one
``sync_feed`` task per due feed, the first sync of an account queued as soon as
its connection commits, and the owner's alert when a feed has gone without a good
sync for a few periods (cleared once it is read again).

Reading the feed is :mod:`accounts.services.feed`'s job; when it is due is
:mod:`accounts.feed_policy`'s.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from kombu.exceptions import OperationalError as BrokerOperationalError

from accounts import alerts, feed_policy
from accounts.models import AlertState, InstagramAccount
from accounts.selectors.feed_status import FeedStatus, feed_statuses
from accounts.tasks import sync_feed as sync_feed_task

logger = logging.getLogger(__name__)

STALE_KEY_PREFIX = "feed-stale:"


def feed_stale_key(account: InstagramAccount) -> str:
    return f"{STALE_KEY_PREFIX}{account.pk}"


# --- Queueing -------------------------------------------------------------------------------


def feed_sync_queue(*, account_ids: list[int], force: bool = False) -> int:
    """Queue one ``sync_feed`` task per account (each feed is its own task, so one
    failing account never delays or stops another). Enqueued at once: nothing is
    written first. Returns how many were queued."""
    for account_id in account_ids:
        sync_feed_task.delay(account_id, force)
    return len(account_ids)


def _queue_first_sync(account_id: int) -> None:
    try:
        # One try, no publish retries: a person is waiting for the page.
        sync_feed_task.apply_async(args=(account_id, True), retry=False)
    except (BrokerOperationalError, OSError) as exc:
        logger.warning(
            "could not queue the first feed sync of account %s (%s: %s); "
            "the next beat tick reads it",
            account_id,
            type(exc).__name__,
            exc,
        )


def feed_first_sync_queue(*, account: InstagramAccount) -> None:
    """Read ``account``'s feed now that it is connected: a forced ``sync_feed``,
    queued once the surrounding transaction commits (never for one that rolls
    back). A broker that cannot take it is logged and never fails the connection:
    the feed is due, so the next beat tick queues it."""
    account_id = account.pk
    transaction.on_commit(lambda: _queue_first_sync(account_id))


# --- The stale-feed alert ---------------------------------------------------------------


def _alert_text(account: InstagramAccount, status: FeedStatus, now: datetime) -> tuple[str, str]:
    period = feed_policy.sync_period()
    who = f"@{account.username} ({account.slug})"
    if status.synced_at is None:
        subject = f"tokenagent: the feed of {who} has never been read"
        since = "has not been able to read this account's posts from Instagram yet"
        shown = "Websites showing it get an empty feed, marked stale."
    else:
        subject = f"tokenagent: the feed of {who} is {timesince(status.synced_at, now)} old"
        since = (
            "has not read this account's posts from Instagram since "
            f"{status.synced_at:%Y-%m-%d %H:%M} UTC"
        )
        shown = "Websites keep showing the last good copy, marked stale."
    minutes = int(period.total_seconds() // 60)
    page = alerts.agent_url(reverse("accounts:account", args=[account.slug]))
    if status.last_error:
        cause = f"Last error ({status.last_error_at:%Y-%m-%d %H:%M} UTC): {status.last_error}"
        hint = (
            "Nothing needs doing while Instagram is down or rate-limiting: the agent keeps "
            "trying. If the error says the token is invalid, reconnect the account"
            + (f" at {page}" if page else "")
            + "."
        )
    else:
        cause = "No sync has failed: the syncs are not running."
        hint = "Check that the Celery worker with beat runs (the worker process / dyno)."
    body = (
        f"The agent {since}; it reads them every {minutes} minutes. {shown}\n\n{cause}\n{hint}\n"
        f"`python manage.py sync_feeds {account.slug}` reads it now and prints why it fails."
    )
    return subject, body


def alerts_check_feeds(*, now: datetime | None = None) -> int:
    """Alert once for each active account whose feed has gone without a good sync
    for FEED_STALE_ALERT_PERIODS periods (feed_policy.feed_needs_alert), and clear
    the condition for every other account, so it alerts again if it comes back.
    Returns how many alerts went out."""
    now = now or timezone.now()
    accounts = list(InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE))
    statuses = feed_statuses(accounts=accounts, now=now)
    sent = 0
    keys = []
    for account in accounts:
        status = statuses[account.pk]
        if not status.alerting:
            continue
        key = feed_stale_key(account)
        keys.append(key)
        subject, body = _alert_text(account, status, now)
        since = status.synced_at.isoformat() if status.synced_at else "never"
        sent += alerts.alert_raise(
            key=key, fingerprint=f"stale:{since}", subject=subject, body=body, now=now
        )
    AlertState.objects.filter(key__startswith=STALE_KEY_PREFIX, cleared_at__isnull=True).exclude(
        key__in=keys
    ).update(cleared_at=now)
    return sent
