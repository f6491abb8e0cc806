"""The periodic job's work besides refreshing: record the heartbeat, prune history
and expired sessions, sweep unused feed pictures once a day, raise or clear the
expiring-soon and stale-feed alerts, and fan out one refresh task per due account.
``accounts.tasks.refresh_due_accounts`` (beat) and ``manage.py refresh_tokens``
(cron) call it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts import alerts
from accounts.models import RefreshAttempt, RefresherHeartbeat
from accounts.selectors.refresh import accounts_due_for_refresh, heartbeat_last
from accounts.services.feed import feed_images_sweep
from accounts.services.feed_schedule import alerts_check_feeds
from accounts.tasks import refresh_account as refresh_account_task
from accounts.tasks import refresh_accounts as refresh_accounts_task

logger = logging.getLogger(__name__)

# Expired sessions are deleted by the first tick of each clock hour (every /login/
# leaves a session row behind; nothing else removes them).
SESSION_PRUNE_SECONDS = 3600
# Feed pictures no feed uses are deleted by each sync among those it stopped using;
# the first tick of each UTC day sweeps them all (a crashed sync's leftovers).
FEED_IMAGE_SWEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class TickResult:
    heartbeat: RefresherHeartbeat
    due: list[int]
    pruned_attempts: int
    pruned_heartbeats: int
    sessions_pruned: bool
    feed_images_swept: int = 0


def refresher_heartbeat_record(*, now: datetime, accounts_due: int = 0) -> RefresherHeartbeat:
    return RefresherHeartbeat.objects.create(ran_at=now, accounts_due=accounts_due)


def refresher_heartbeat_set_queued(*, heartbeat: RefresherHeartbeat, queued: int) -> None:
    heartbeat.accounts_queued = queued
    heartbeat.save(update_fields=["accounts_queued"])


def refresh_history_prune(*, now: datetime) -> tuple[int, int]:
    """Drop refresh attempts older than REFRESH_HISTORY_DAYS and heartbeats older
    than a week (keeps the tables small; one tick every 15 min is ~700 rows/week)."""
    attempts, _ = RefreshAttempt.objects.filter(
        started_at__lt=now - timedelta(days=settings.REFRESH_HISTORY_DAYS)
    ).delete()
    heartbeats, _ = RefresherHeartbeat.objects.filter(ran_at__lt=now - timedelta(days=7)).delete()
    return attempts, heartbeats


def _period(moment: datetime, seconds: int = SESSION_PRUNE_SECONDS) -> int:
    return int(moment.timestamp()) // seconds


def _first_of_period(now: datetime, previous_run: datetime | None, seconds: int) -> bool:
    return previous_run is None or _period(previous_run, seconds) != _period(now, seconds)


def sessions_prune_expired(*, now: datetime, previous_run: datetime | None) -> bool:
    """Delete expired sessions with the session engine's ``clear_expired()`` when
    this tick is the first of its hour (``previous_run`` is the tick before). A
    failure is logged and never stops the tick. Returns whether it pruned."""
    if not _first_of_period(now, previous_run, SESSION_PRUNE_SECONDS):
        return False
    engine = import_module(settings.SESSION_ENGINE)
    try:
        with transaction.atomic():  # a failing DELETE must not break an outer transaction
            engine.SessionStore.clear_expired()
    except (DatabaseError, OSError, NotImplementedError) as exc:
        logger.warning("could not prune expired sessions: %s: %s", type(exc).__name__, exc)
        return False
    return True


def feed_images_sweep_daily(*, now: datetime, previous_run: datetime | None) -> int:
    """Sweep every unused feed picture (services/feed.py) when this tick is the
    first of its UTC day. A failure is logged and never stops the tick. Returns
    how many pictures were deleted."""
    if not _first_of_period(now, previous_run, FEED_IMAGE_SWEEP_SECONDS):
        return 0
    try:
        return feed_images_sweep()
    except DatabaseError as exc:
        logger.warning("could not sweep unused feed pictures: %s: %s", type(exc).__name__, exc)
        return 0


def refresher_tick(*, now: datetime | None = None) -> TickResult:
    """What each periodic run does besides queueing: record the heartbeat, prune
    old history and expired sessions, sweep unused feed pictures daily, raise/clear
    the expiring-soon and stale-feed alerts and clear a heartbeat alert (the
    refresher evidently runs). Returns the ids of the accounts due."""
    now = now or timezone.now()
    previous = heartbeat_last()
    previous_at = previous.ran_at if previous else None
    due = [a.pk for a in accounts_due_for_refresh(now=now)]
    heartbeat = refresher_heartbeat_record(now=now, accounts_due=len(due))
    pruned_attempts, pruned_heartbeats = refresh_history_prune(now=now)
    alerts.alerts_check_expiring(now=now, about_to_refresh=set(due))
    alerts_check_feeds(now=now)
    alerts.alert_clear(key=alerts.HEARTBEAT_KEY)
    sessions_pruned = sessions_prune_expired(now=now, previous_run=previous_at)
    return TickResult(
        heartbeat=heartbeat,
        due=due,
        pruned_attempts=pruned_attempts,
        pruned_heartbeats=pruned_heartbeats,
        sessions_pruned=sessions_pruned,
        feed_images_swept=feed_images_sweep_daily(now=now, previous_run=previous_at),
    )


def refresh_queue(
    *, account_ids: list[int], trigger: str = RefreshAttempt.Trigger.BEAT, force: bool = False
) -> int:
    """Queue one ``refresh_account`` task per account (each account is its own
    task, so one failing account never delays or stops another).

    Enqueued at once, not ``on_commit``: nothing is written first, and the callers
    need a broker error now (the hook answers 503, "refresh now" falls back to an
    in-process refresh)."""
    for account_id in account_ids:
        refresh_account_task.delay(account_id, trigger, force)
    return len(account_ids)


def refresh_queue_batches(
    *, account_ids: list[int], trigger: str = RefreshAttempt.Trigger.BEAT
) -> int:
    """Beat's fan-out: queue one ``refresh_accounts`` per ``REFRESH_BATCH_SIZE``
    due accounts (services/refresh_batch.py: a few queries per batch instead of a
    handful per account, Instagram asked on several threads). One account's
    failure still never delays another: each is settled on its own, and retried
    on its own. Returns how many accounts were queued."""
    size = settings.REFRESH_BATCH_SIZE
    for start in range(0, len(account_ids), size):
        refresh_accounts_task.delay(account_ids[start : start + size], trigger)
    return len(account_ids)
