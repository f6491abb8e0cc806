"""Reads about the refresher: what is due, heartbeat, health, the account page's info."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import InstagramAccount, RefreshAttempt, RefresherHeartbeat
from accounts.selectors import refresh as sel
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def test_accounts_due_for_refresh_picks_only_due_active_unlocked_accounts(settings):
    settings.REFRESH_FREQUENCY = "weekly"
    now = timezone.now()
    due_weekly = make_account(username="due_weekly", token_age=timedelta(days=8))
    due_window = make_account(
        username="due_window", token_age=timedelta(days=2), expires_in=timedelta(days=3)
    )
    make_account(username="not_yet", token_age=timedelta(days=3))
    make_account(username="young", token_age=timedelta(hours=23), expires_in=timedelta(days=2))
    make_account(username="expired", token_age=timedelta(days=61), expires_in=-timedelta(days=1))
    make_account(username="reconnect", status="needs_reconnect")
    make_account(username="gone", status="disconnected")
    make_account(username="tokenless", token=None)
    locked = make_account(username="locked")
    InstagramAccount.objects.filter(pk=locked.pk).update(
        refresh_locked_until=now + timedelta(minutes=2)
    )
    lapsed = make_account(username="lapsed", expires_in=timedelta(days=50))
    InstagramAccount.objects.filter(pk=lapsed.pk).update(
        refresh_locked_until=now - timedelta(minutes=2)
    )
    daily = make_account(
        username="daily_override",
        token_age=timedelta(days=2),
        refresh_frequency="daily",
        expires_in=timedelta(days=58),
    )

    due = sel.accounts_due_for_refresh(now=now)
    # Soonest expiry first, so a backlog serves the most urgent tokens first.
    assert [a.username for a in due] == ["due_window", "lapsed", "due_weekly", "daily_override"]
    assert {a.pk for a in due} == {due_weekly.pk, due_window.pk, lapsed.pk, daily.pk}


def test_recently_failed_accounts_cool_down_for_beat_but_not_for_people(settings):
    settings.REFRESH_FAILURE_COOLDOWN_SECONDS = 3600
    now = timezone.now()
    failed = make_account(username="failed")
    InstagramAccount.objects.filter(pk=failed.pk).update(
        last_error="HTTP 500", last_error_at=now - timedelta(minutes=20)
    )
    long_ago = make_account(username="failed_long_ago")
    InstagramAccount.objects.filter(pk=long_ago.pk).update(
        last_error="HTTP 500", last_error_at=now - timedelta(hours=2)
    )
    assert [a.pk for a in sel.accounts_due_for_refresh(now=now)] == [long_ago.pk]
    assert {a.pk for a in sel.accounts_due_for_refresh(now=now, include_cooling_down=True)} == {
        failed.pk,
        long_ago.pk,
    }


def test_due_accounts_do_not_load_token_ciphertext(django_assert_num_queries):
    make_account(username="a1")
    make_account(username="a2")
    with django_assert_num_queries(1):
        due = sel.accounts_due_for_refresh()
        assert len(due) == 2


def test_next_refresh_at(settings):
    settings.REFRESH_FREQUENCY = "weekly"
    account = make_account(token_age=timedelta(days=2))
    token = account.access_token
    assert sel.next_refresh_at(account=account) == token.issued_at + timedelta(days=7)
    InstagramAccount.objects.filter(pk=account.pk).update(status="needs_reconnect")
    account.refresh_from_db()
    assert sel.next_refresh_at(account=account) is None
    assert sel.next_refresh_at(account=make_account(token=None)) is None


def test_accounts_health_by_slug():
    make_account(username="fine", slug="fine")
    make_account(username="soon", slug="soon", expires_in=timedelta(days=6))
    make_account(username="dead", slug="dead", expires_in=-timedelta(hours=1))
    make_account(username="refused", slug="refused", status="needs_reconnect")
    make_account(username="removed", slug="removed", status="disconnected")
    make_account(username="empty", slug="empty", token=None)
    assert sel.accounts_health() == {
        "dead": "needs_reconnect",
        "empty": "needs_reconnect",
        "fine": "ok",
        "refused": "needs_reconnect",
        "removed": "disconnected",
        "soon": "expiring",
    }


def test_heartbeat_stale_after_twice_the_period(settings):
    settings.REFRESH_TICK_SECONDS = 900
    now = timezone.now()
    assert sel.heartbeat_is_stale(now=now)  # never ran
    RefresherHeartbeat.objects.create(ran_at=now - timedelta(minutes=29))
    assert not sel.heartbeat_is_stale(now=now)
    status = sel.heartbeat_status(now=now)
    assert status.age_seconds == 29 * 60 and not status.stale and status.period_seconds == 900
    assert sel.heartbeat_is_stale(now=now + timedelta(minutes=2))


def test_account_refresh_info_and_history():
    account = make_account(token_age=timedelta(days=8))
    now = timezone.now()
    for minutes, outcome in [(30, "transient"), (20, "success"), (10, "skipped")]:
        RefreshAttempt.objects.create(
            account=account, outcome=outcome, started_at=now - timedelta(minutes=minutes)
        )
    RefresherHeartbeat.objects.create(ran_at=now)
    info = sel.account_refresh_info(account=account, now=now)
    assert info.health == "ok" and info.due and not info.refreshing and not info.expired
    assert info.last_attempt is not None and info.last_attempt.outcome == "skipped"
    assert info.last_success is not None and info.last_success.outcome == "success"
    assert not info.heartbeat.stale
    assert info.next_refresh_at is not None and info.next_refresh_at <= now
    history = sel.refresh_history(account=account, limit=2)
    assert [a.outcome for a in history] == ["skipped", "success"]


def test_refresh_history_is_listed_read_only_in_the_admin(admin_client):
    account = make_account(username="history_one", slug="history-one")
    RefreshAttempt.objects.create(
        account=account, outcome="invalid_token", ig_code=190, message="Session has expired"
    )
    response = admin_client.get("/admin/accounts/refreshattempt/?q=history-one")
    assert response.status_code == 200
    assert "Session has expired" in response.content.decode()
    assert admin_client.get("/admin/accounts/refreshattempt/add/").status_code == 403
