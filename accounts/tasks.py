"""Celery tasks: thin wrappers around the refresh and feed services that own the retry
policy.

Beat's one entry (``CELERY_BEAT_SCHEDULE`` in settings) runs
``refresh_due_accounts`` every ``REFRESH_TICK_SECONDS``; it does the housekeeping
(heartbeat, pruning, expired sessions once an hour, alerts) and fans out one
``refresh_accounts`` per batch of due tokens and one ``sync_feed`` per due feed.
Tasks are acknowledged late (a batch excepted, see there) and are idempotent (a
refresh claims its account and re-checks that it is due, a sync claims its feed and
re-checks it too), so a redelivered or duplicated task is harmless. Each task
imports its service inside its body (services import the tasks they queue; this
keeps the import one-way).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime

from celery import Task, shared_task
from celery.signals import beat_init
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from accounts import instagram
from accounts.models import InstagramAccount, RefreshAttempt

logger = logging.getLogger(__name__)

# Countdowns stay well below Redis' one-hour visibility timeout: a message held
# unacknowledged longer than that would be delivered a second time.
MAX_COUNTDOWN = 45 * 60
# Rate limits without a hint wait this many times longer than transient errors.
RATE_LIMIT_FACTOR = 10
# A feed sync downloads pictures for up to FEED_SYNC_IMAGE_BUDGET_SECONDS besides
# its listing calls: its own time limits, above that and below its claim
# (FEED_SYNC_LOCK_SECONDS), so the claim never lapses while the task may still run.
FEED_SOFT_TIME_LIMIT = settings.FEED_SYNC_IMAGE_BUDGET_SECONDS + 240
FEED_TIME_LIMIT = FEED_SOFT_TIME_LIMIT + 60
# Errors a task retries with backoff; the others are settled by the service.
RETRYABLE = (instagram.InstagramTransientError, instagram.InstagramMalformedResponseError)


def backoff_countdown(retries: int, *, base: float, cap: float) -> int:
    """Exponential backoff with jitter: between half and all of ``base * 2**retries``
    (capped), so a crowd of failed refreshes does not come back in lockstep."""
    ceiling = min(cap, base * (2**retries), MAX_COUNTDOWN)
    return max(1, round(ceiling / 2 + random.uniform(0, ceiling / 2)))  # noqa: S311


def retry_countdown(error: instagram.InstagramError, retries: int) -> int:
    base, cap = settings.REFRESH_RETRY_BACKOFF_BASE, settings.REFRESH_RETRY_BACKOFF_MAX
    if isinstance(error, instagram.InstagramRateLimitError):
        if error.retry_after:
            return max(1, min(round(error.retry_after), MAX_COUNTDOWN))
        return backoff_countdown(retries, base=base * RATE_LIMIT_FACTOR, cap=MAX_COUNTDOWN)
    return backoff_countdown(retries, base=base, cap=cap)


def retry_limit(error: instagram.InstagramError) -> int:
    if isinstance(error, instagram.InstagramMalformedResponseError):
        return settings.REFRESH_MALFORMED_MAX_RETRIES
    return settings.REFRESH_MAX_RETRIES


def _seconds_until(moment: datetime | None) -> int:
    if moment is None:
        return 1
    return max(1, int((moment - timezone.now()).total_seconds()) + 1)


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=None)
def refresh_account(
    self: Task,
    account_id: int,
    trigger: str = RefreshAttempt.Trigger.BEAT,
    force: bool = False,
    tried: int = 0,
) -> str:
    """Refresh one account. Transient errors retry with backoff and jitter, rate
    limits after Instagram's hint (or a long backoff), malformed answers a few
    times; then the owner is told. Permanent errors are settled by the service.
    ``tried``: attempts already made elsewhere (a batch's first one)."""
    from accounts.services.refresh import RefreshInProgress, token_refresh_by_id
    from accounts.services.refresh_outcomes import token_refresh_give_up

    retries = self.request.retries + tried
    try:
        attempt = token_refresh_by_id(
            account_id=account_id, trigger=trigger, force=force, attempt=retries + 1
        )
    except RefreshInProgress as exc:
        # Someone else is refreshing it. Come back once their claim lapses: if they
        # succeeded the account is no longer due and this run is a no-op.
        if retries >= settings.REFRESH_MAX_RETRIES:
            return "busy"
        raise self.retry(countdown=_seconds_until(exc.locked_until)) from None
    except RETRYABLE as exc:
        if retries >= retry_limit(exc):
            account = InstagramAccount.objects.filter(pk=account_id).first()
            if account is not None:
                token_refresh_give_up(account=account, error=exc, attempts=retries + 1)
            return "failed"
        raise self.retry(countdown=retry_countdown(exc, retries)) from None
    return "missing" if attempt is None else attempt.outcome


# Acknowledged on receipt, unlike the others: a batch runs for seconds, and a lost
# one costs nothing (its claims lapse and the next tick queues the accounts again,
# still due), while Redis vanishing under a long unacknowledged message can take
# the worker down with it (kombu's restore of unacked messages).
@shared_task(ignore_result=True, acks_late=False)
def refresh_accounts(account_ids: list[int], trigger: str = RefreshAttempt.Trigger.BEAT) -> dict:
    """Refresh a batch of due accounts (beat's fan-out,
    ``services/refresh_batch.py``); each retryable failure is retried on its own as
    a ``refresh_account`` that counts the batch's attempt. Returns how many
    accounts ended each way."""
    from collections import Counter

    from accounts.services.refresh_batch import token_refresh_batch

    result = token_refresh_batch(account_ids=account_ids, trigger=trigger)
    for account_id, error in result.retry:
        refresh_account.apply_async(
            (account_id, trigger, False, 1), countdown=retry_countdown(error, 0)
        )
    return dict(Counter(result.outcomes.values()))


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=FEED_SOFT_TIME_LIMIT,
    time_limit=FEED_TIME_LIMIT,
)
def sync_feed(self: Task, account_id: int, force: bool = False) -> str:
    """Sync one account's feed (``force``: even when it is not due, as after a
    connection). Instagram's transient failures and malformed answers are retried
    like a refresh's (backoff with jitter, Instagram's rate-limit hint); the
    snapshot meanwhile keeps being served, marked stale. A sync another worker is
    running is left to it; after the last retry the schedule tries again, and the
    owner hears once the feed is a few periods old (services/feed_schedule.py)."""
    from accounts.selectors.feed_status import feed_account_for_sync, feed_sync_is_due
    from accounts.services.feed import feed_sync

    account = feed_account_for_sync(account_id=account_id)
    if account is None:
        return "missing"
    retries = self.request.retries
    # A retry is due by definition; a first run re-checks (beat may have queued the
    # same feed twice while the workers were busy).
    if not force and retries == 0 and not feed_sync_is_due(account=account):
        return "not_due"
    result = feed_sync(account=account, fresh=True)
    if isinstance(result.error, RETRYABLE):
        if retries >= retry_limit(result.error):
            logger.warning(
                "feed of %s not synced after %s attempts; the schedule tries again",
                account.slug,
                retries + 1,
            )
            return "failed"
        raise self.retry(countdown=retry_countdown(result.error, retries))
    return result.outcome


@shared_task(ignore_result=True)
def refresh_due_accounts(trigger: str = RefreshAttempt.Trigger.BEAT) -> int:
    """The periodic job: heartbeat, housekeeping, alerts, then one
    ``refresh_accounts`` per batch of due tokens and one ``sync_feed`` per due feed. Returns
    how many refreshes were queued."""
    from accounts.selectors.feed_status import feed_accounts_due
    from accounts.services.feed_schedule import feed_sync_queue
    from accounts.services.refresher import (
        refresh_queue_batches,
        refresher_heartbeat_set_queued,
        refresher_tick,
    )

    tick = refresher_tick()
    queued = refresh_queue_batches(account_ids=tick.due, trigger=trigger)
    refresher_heartbeat_set_queued(heartbeat=tick.heartbeat, queued=queued)
    feeds = feed_sync_queue(account_ids=[a.pk for a in feed_accounts_due()])
    logger.info(
        "refresher tick: %s account(s) due, %s queued; %s feed sync(s) queued",
        len(tick.due),
        queued,
        feeds,
    )
    return queued


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=5)
def send_alert(self: Task, *, key: str, channel: str, subject: str, body: str) -> None:
    """Deliver one alert over one channel; retried with backoff, then logged and
    forgotten so the next check raises it again."""
    from accounts.alerts import AlertDeliveryError, alert_deliver, alert_delivery_failed

    try:
        alert_deliver(channel=channel, subject=subject, body=body)
    except AlertDeliveryError as exc:
        if self.request.retries >= (self.max_retries or 0):
            logger.error("alert %s not delivered by %s, giving up: %s", key, channel, exc)
            alert_delivery_failed(key=key)
            return
        logger.warning("alert %s not delivered by %s, will retry: %s", key, channel, exc)
        raise self.retry(
            countdown=backoff_countdown(self.request.retries, base=30, cap=1800)
        ) from None


@beat_init.connect
def _tick_when_beat_starts(sender: object = None, **kwargs: object) -> None:
    """Run one tick as soon as beat starts: a restarted beat (Heroku wipes its
    schedule file) would otherwise wait a whole period before the first one."""
    try:
        refresh_due_accounts.delay()
    except BrokerOperationalError as exc:
        logger.warning("could not queue the start-up refresh tick: %s", exc)
