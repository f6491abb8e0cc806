"""Task wiring and retry policy (the logic itself is covered through the service)."""

from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts import instagram, tasks
from accounts.models import InstagramAccount, RefreshAttempt, RefresherHeartbeat
from accounts.services import refresh_claim as claims
from tests import instagram_fakes as fakes
from tests.accounts.refresh_support import OLD_TOKEN, add_refresh_error, refresh_calls, token_of
from tests.factories import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert_by_email(settings, django_capture_on_commit_callbacks):
    """Alerts go to the locmem outbox; ``alert_by_email()`` runs a block whose
    on-commit callbacks (the alert dispatch) execute as they would on commit."""
    settings.ALERT_EMAIL = ["owner@example.com"]
    settings.ALERT_WEBHOOK_URL = ""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def outcomes(account):
    return list(
        RefreshAttempt.objects.filter(account=account)
        .order_by("started_at", "pk")
        .values_list("outcome", flat=True)
    )


def test_task_settings_survive_a_killed_worker():
    assert tasks.refresh_account.acks_late
    from tokenagent.celery import app

    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


def test_500_three_times_then_200_ends_refreshed(ig, account, eager_celery, alert_by_email):
    for _ in range(3):
        add_refresh_error(ig, status=500, body={})
    fakes.register_refresh(ig)
    with alert_by_email():
        result = tasks.refresh_account.apply(args=(account.pk, "beat"))
    assert result.result == "success"
    assert len(refresh_calls(ig)) == 4
    assert outcomes(account) == ["transient"] * 3 + ["success"]
    assert list(
        RefreshAttempt.objects.order_by("started_at", "pk").values_list("attempt", flat=True)
    ) == [1, 2, 3, 4]
    assert token_of(account).value == fakes.REFRESHED_TOKEN
    assert mail.outbox == []


def test_transient_failures_give_up_after_max_retries_and_alert_once(
    ig, account, eager_celery, alert_by_email, settings
):
    settings.REFRESH_MAX_RETRIES = 2
    for _ in range(3):
        add_refresh_error(ig, code=2, status=500)
    with alert_by_email():
        result = tasks.refresh_account.apply(args=(account.pk, "beat"))
    assert result.result == "failed"
    assert len(refresh_calls(ig)) == 3
    assert token_of(account).value == OLD_TOKEN
    assert len(mail.outbox) == 1 and "after 3 attempts" in mail.outbox[0].body
    account.refresh_from_db()
    assert account.status == "active"


def test_malformed_answers_retry_a_few_times_then_alert(
    ig, account, eager_celery, alert_by_email, settings
):
    settings.REFRESH_MALFORMED_MAX_RETRIES = 3
    settings.REFRESH_MAX_RETRIES = 10
    for _ in range(5):
        ig.add(responses.GET, fakes.REFRESH_URL, body="not json at all")
    with alert_by_email():
        result = tasks.refresh_account.apply(args=(account.pk, "beat"))
    assert result.result == "failed"
    assert len(refresh_calls(ig)) == 4
    assert outcomes(account) == ["malformed"] * 4
    assert len(mail.outbox) == 1


def test_invalid_token_is_not_retried(ig, account, eager_celery, alert_by_email):
    add_refresh_error(ig, code=190)
    fakes.register_refresh(ig)
    with alert_by_email():
        result = tasks.refresh_account.apply(args=(account.pk, "beat"))
    assert result.result == "invalid_token"
    assert len(refresh_calls(ig)) == 1
    assert len(mail.outbox) == 1
    account.refresh_from_db()
    assert account.status == "needs_reconnect"


def test_retry_countdowns():
    transient = instagram.InstagramTransientError("x")
    with mock.patch("accounts.tasks.random.uniform", side_effect=lambda a, b: b):
        assert tasks.retry_countdown(transient, 0) == 60
        assert tasks.retry_countdown(transient, 3) == 480
        assert tasks.retry_countdown(transient, 10) == 900  # REFRESH_RETRY_BACKOFF_MAX
        assert tasks.retry_countdown(instagram.InstagramRateLimitError("x"), 0) == 600
    with mock.patch("accounts.tasks.random.uniform", side_effect=lambda a, b: a):
        assert tasks.retry_countdown(transient, 3) == 240  # jitter: half to all
    hinted = instagram.InstagramRateLimitError("x", retry_after=1200.0)
    assert tasks.retry_countdown(hinted, 0) == 1200
    huge = instagram.InstagramRateLimitError("x", retry_after=6 * 3600.0)
    assert tasks.retry_countdown(huge, 0) == tasks.MAX_COUNTDOWN  # below visibility timeout


def test_retry_uses_the_rate_limit_hint(ig, account):
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(4),
        status=400,
        headers={"Retry-After": "1800"},
    )
    with mock.patch.object(tasks.refresh_account, "retry", side_effect=RuntimeError) as retry:
        with pytest.raises(RuntimeError):
            tasks.refresh_account.run(account.pk, "beat")
    assert retry.call_args.kwargs["countdown"] == 1800
    assert outcomes(account) == ["rate_limited"]


def test_busy_account_is_retried_when_the_claim_lapses(ig, account):
    claim = claims.account_refresh_claim(account=account, now=timezone.now())
    assert claim is not None
    with mock.patch.object(tasks.refresh_account, "retry", side_effect=RuntimeError) as retry:
        with pytest.raises(RuntimeError):
            tasks.refresh_account.run(account.pk, "beat")
    countdown = retry.call_args.kwargs["countdown"]
    assert 1 <= countdown <= (claim - timezone.now()).total_seconds() + 2
    assert refresh_calls(ig) == []


def test_missing_account_is_a_no_op():
    assert tasks.refresh_account.apply(args=(987654, "beat")).result == "missing"


def test_periodic_job_records_heartbeat_and_fans_out_due_accounts_only(
    ig, eager_celery, alert_by_email
):
    due_one = make_account(username="due_one", token_age=timedelta(days=8))
    due_two = make_account(username="due_two", token_age=timedelta(days=9))
    not_due = make_account(username="not_due", token_age=timedelta(days=1, hours=1))
    for _ in range(2):
        fakes.register_refresh(ig)
    with alert_by_email():
        result = tasks.refresh_due_accounts.apply()
    assert result.result == 2
    beat = RefresherHeartbeat.objects.get()
    assert (beat.accounts_due, beat.accounts_queued) == (2, 2)
    assert len(refresh_calls(ig)) == 2
    assert outcomes(due_one) == ["success"] and outcomes(due_two) == ["success"]
    assert outcomes(not_due) == []
    assert set(RefreshAttempt.objects.values_list("trigger", flat=True)) == {"beat"}


def test_one_failing_account_does_not_stop_the_others(ig, eager_celery, alert_by_email):
    bad = make_account(username="bad_one", token="IGAAbadTokenbadTokenbadToken1")
    good = make_account(username="good_one", token="IGAAgoodTokengoodTokengood2")

    def callback(request):
        if "IGAAbadToken" in request.url:
            return (400, {}, '{"error": {"code": 190, "message": "Invalid OAuth access token"}}')
        return (200, {}, '{"access_token": "IGAAgoodNewToken0000001", "expires_in": 5183944}')

    ig.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)
    with alert_by_email():
        tasks.refresh_due_accounts.apply()
    assert outcomes(bad) == ["invalid_token"]
    assert outcomes(good) == ["success"]
    assert InstagramAccount.objects.get(pk=bad.pk).status == "needs_reconnect"


def test_send_alert_retries_then_forgets(settings, eager_celery):
    from accounts.models import AlertState

    settings.ALERT_WEBHOOK_URL = "https://alerts.example/hook"
    AlertState.objects.create(key="k", fingerprint="f", last_sent_at=timezone.now())
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, "https://alerts.example/hook", status=500)
        tasks.send_alert.apply(
            kwargs={"key": "k", "channel": "webhook", "subject": "s", "body": "b"}
        )
        assert len(rsps.calls) == 6
    assert AlertState.objects.get(key="k").last_sent_at is None


def test_beat_start_queues_a_tick_at_once():
    with mock.patch.object(tasks.refresh_due_accounts, "delay") as delay:
        tasks._tick_when_beat_starts(sender=None)
    delay.assert_called_once_with()
    with mock.patch.object(
        tasks.refresh_due_accounts, "delay", side_effect=OperationalError("down")
    ):
        tasks._tick_when_beat_starts(sender=None)  # logged, not raised


def test_beat_schedule_has_the_one_periodic_entry(settings):
    (entry,) = settings.CELERY_BEAT_SCHEDULE.values()
    assert entry["task"] == "accounts.tasks.refresh_due_accounts"
    assert entry["schedule"] == settings.REFRESH_TICK_SECONDS
    assert tasks.refresh_due_accounts.name == entry["task"]
