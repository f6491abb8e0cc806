"""The periodic job's housekeeping: heartbeat, history, expiring alerts."""
# ruff: noqa: F811  (pytest fixtures imported from tests.accounts.refresh_support)

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import InstagramAccount, RefreshAttempt, RefresherHeartbeat
from accounts.services.refresher import refresher_tick as tick
from tests.accounts.refresh_support import eager_celery  # noqa: F401 (fixture)
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
