"""Celery tasks: thin wrappers around the refresh services that own the retry policy.

Beat's one entry (``CELERY_BEAT_SCHEDULE`` in settings) runs
``refresh_due_accounts`` every ``REFRESH_TICK_SECONDS``; it does the housekeeping
(heartbeat, pruning, expired sessions once an hour) and fans out one
``refresh_account`` per due account. Tasks are acknowledged late and are
idempotent (the refresh claims its account and re-checks that it is due), so a
redelivered or duplicated task is harmless. Each task imports its service inside
its body (services import the tasks they queue; this keeps the import one-way).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime

from celery import shared_task
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
    self, account_id: int, trigger: str = RefreshAttempt.Trigger.BEAT, force: bool = False
) -> str:
    """Refresh one account. Transient errors retry with backoff and jitter, rate
    limits after Instagram's hint (or a long backoff), malformed answers a few
    times; then the owner is told. Permanent errors are settled by the service."""
    from accounts.services.refresh import (
        RefreshInProgress,
        token_refresh,
        token_refresh_give_up,
    )

    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return "missing"
    retries = self.request.retries
    try:
        attempt = token_refresh(account=account, trigger=trigger, force=force, attempt=retries + 1)
    except RefreshInProgress as exc:
        # Someone else is refreshing it. Come back once their claim lapses: if they
        # succeeded the account is no longer due and this run is a no-op.
        if retries >= settings.REFRESH_MAX_RETRIES:
            return "busy"
        raise self.retry(countdown=_seconds_until(exc.locked_until)) from None
    except (
        instagram.InstagramTransientError,
        instagram.InstagramMalformedResponseError,
    ) as exc:
        if retries >= retry_limit(exc):
            token_refresh_give_up(account=account, error=exc, attempts=retries + 1)
            return "failed"
        raise self.retry(countdown=retry_countdown(exc, retries)) from None
    return attempt.outcome


@shared_task(ignore_result=True)
def refresh_due_accounts(trigger: str = RefreshAttempt.Trigger.BEAT) -> int:
    """The periodic job: heartbeat, housekeeping, expiring-soon alerts, then one
    ``refresh_account`` per due account. Returns how many were queued."""
    from accounts.services.refresher import (
        refresh_queue,
        refresher_heartbeat_set_queued,
        refresher_tick,
    )

    tick = refresher_tick()
    queued = refresh_queue(account_ids=tick.due, trigger=trigger)
    refresher_heartbeat_set_queued(heartbeat=tick.heartbeat, queued=queued)
    logger.info("refresher tick: %s account(s) due, %s queued", len(tick.due), queued)
    return queued


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=5)
def send_alert(self, *, key: str, channel: str, subject: str, body: str) -> None:
    """Deliver one alert over one channel; retried with backoff, then logged and
    forgotten so the next check raises it again."""
    from accounts.alerts import AlertDeliveryError, alert_deliver, alert_delivery_failed

    try:
        alert_deliver(channel=channel, subject=subject, body=body)
    except AlertDeliveryError as exc:
        if self.request.retries >= self.max_retries:
            logger.error("alert %s not delivered by %s, giving up: %s", key, channel, exc)
            alert_delivery_failed(key=key)
            return
        logger.warning("alert %s not delivered by %s, will retry: %s", key, channel, exc)
        raise self.retry(
            countdown=backoff_countdown(self.request.retries, base=30, cap=1800)
        ) from None


@beat_init.connect
def _tick_when_beat_starts(sender=None, **kwargs) -> None:
    """Run one tick as soon as beat starts: a restarted beat (Heroku wipes its
    schedule file) would otherwise wait a whole period before the first one."""
    try:
        refresh_due_accounts.delay()
    except BrokerOperationalError as exc:
        logger.warning("could not queue the start-up refresh tick: %s", exc)
