"""The periodic job's housekeeping: heartbeat, history, expiring alerts, sessions."""

from datetime import UTC, datetime, timedelta
from importlib import import_module
from unittest import mock

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import DatabaseError
from django.utils import timezone

from accounts.models import InstagramAccount, RefreshAttempt, RefresherHeartbeat
from accounts.services.refresher import refresher_tick as tick
from tests.factories import make_account

# --- The tick -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tick_records_heartbeat_prunes_and_lists_due(settings):
    settings.REFRESH_HISTORY_DAYS = 90
    now = timezone.now()
    due = make_account(username="due_one")
    make_account(username="fresh_one", token_age=timedelta(hours=3))
    old = RefreshAttempt.objects.create(
        account=due, outcome="success", started_at=now - timedelta(days=91)
    )
    recent = RefreshAttempt.objects.create(
        account=due, outcome="success", started_at=now - timedelta(days=89)
    )
    RefresherHeartbeat.objects.create(ran_at=now - timedelta(days=8))

    result = tick(now=now)

    assert result.due == [due.pk]
    assert result.heartbeat.accounts_due == 1 and result.heartbeat.ran_at == now
    assert not RefreshAttempt.objects.filter(pk=old.pk).exists()
    assert RefreshAttempt.objects.filter(pk=recent.pk).exists()
    assert list(RefresherHeartbeat.objects.all()) == [result.heartbeat]
    assert (result.pruned_attempts, result.pruned_heartbeats) == (1, 1)


@pytest.mark.django_db
def test_tick_alerts_expiring_tokens_it_cannot_refresh_now_but_not_the_ones_it_queues(
    settings, django_capture_on_commit_callbacks, eager_celery
):
    settings.ALERT_EMAIL = ["owner@example.com"]
    now = timezone.now()
    queued = make_account(username="queued_one", expires_in=timedelta(days=5))
    failing = make_account(username="failing_one", expires_in=timedelta(days=4))
    InstagramAccount.objects.filter(pk=failing.pk).update(
        last_error="HTTP 500", last_error_at=now - timedelta(minutes=5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = tick(now=now)
    assert result.due == [queued.pk]
    assert len(mail.outbox) == 1
    assert "failing_one" in mail.outbox[0].subject
    assert "expires in 4 days" in mail.outbox[0].subject


# --- Expired sessions (issue 11: every /login/ leaves a row behind) ------------------------


def _session(key: str, *, expires_in: timedelta) -> Session:
    return Session.objects.create(
        session_key=key, session_data="x", expire_date=timezone.now() + expires_in
    )


def _keys() -> set[str]:
    return set(Session.objects.values_list("session_key", flat=True))


@pytest.mark.django_db
def test_the_tick_prunes_expired_sessions_at_most_once_an_hour():
    hour = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    _session("expired-one", expires_in=-timedelta(days=1))
    _session("live-one", expires_in=timedelta(days=1))

    first = tick(now=hour + timedelta(minutes=5))
    assert _keys() == {"live-one"} and first.sessions_pruned

    _session("expired-two", expires_in=-timedelta(minutes=1))
    second = tick(now=hour + timedelta(minutes=20))  # the same hour: left for later
    assert not second.sessions_pruned and _keys() == {"live-one", "expired-two"}

    third = tick(now=hour + timedelta(hours=1, minutes=1))
    assert _keys() == {"live-one"} and third.sessions_pruned


@pytest.mark.django_db
def test_the_first_tick_ever_prunes_sessions():
    _session("expired-one", expires_in=-timedelta(seconds=1))
    result = tick(now=timezone.now())
    assert _keys() == set() and result.sessions_pruned


@pytest.mark.django_db
def test_a_failing_session_prune_is_logged_and_the_tick_goes_on(caplog, settings):
    due = make_account(username="due_one")
    engine = import_module(settings.SESSION_ENGINE)
    with mock.patch.object(
        engine.SessionStore, "clear_expired", side_effect=DatabaseError("disk I/O error")
    ):
        result = tick(now=timezone.now())
    assert "could not prune expired sessions" in caplog.text
    assert result.due == [due.pk] and not result.sessions_pruned
    assert RefresherHeartbeat.objects.filter(pk=result.heartbeat.pk).exists()


@pytest.mark.django_db
def test_the_beat_task_prunes_expired_sessions(eager_celery):
    from accounts.tasks import refresh_due_accounts

    _session("expired-one", expires_in=-timedelta(hours=1))
    _session("live-one", expires_in=timedelta(hours=1))
    refresh_due_accounts.apply()
    assert _keys() == {"live-one"}
