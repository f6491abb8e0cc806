"""Alerts: channels, deduplication, delivery failures that never crash a refresh."""

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import requests
import responses
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts import alerts, instagram
from accounts.models import AlertState, InstagramAccount, RefresherHeartbeat
from tests.factories import make_account

pytestmark = pytest.mark.django_db
HOOK = "https://hooks.slack.example/services/T000/B000/SECRETPATH"


@pytest.fixture
def channels(settings):
    settings.ALERT_EMAIL = ["owner@example.com", "ops@example.com"]
    settings.ALERT_WEBHOOK_URL = HOOK
    return settings


def test_deliver_email(channels):
    alerts.alert_deliver(channel="email", subject="Subject", body="Body")
    (message,) = mail.outbox
    assert message.to == ["owner@example.com", "ops@example.com"]
    assert (message.subject, message.body) == ("Subject", "Body")


def test_deliver_webhook_posts_slack_compatible_json(channels):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, body="ok")
        alerts.alert_deliver(channel="webhook", subject="Subject", body="Body")
        payload = json.loads(rsps.calls[0].request.body or "")
    assert payload == {"text": "Subject\nBody"}


def test_alerts_never_carry_a_token(channels):
    alerts.alert_deliver(
        channel="email", subject="x", body="see https://g/x?access_token=IGAAsecret12345678"
    )
    assert "IGAAsecret12345678" not in mail.outbox[0].body


@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"body": requests.ConnectionError(f"cannot reach {HOOK}")}],
    ids=["http500", "connection"],
)
def test_webhook_failure_is_a_delivery_error_that_hides_the_url(channels, failure):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, **failure)
        with pytest.raises(alerts.AlertDeliveryError) as info:
            alerts.alert_deliver(channel="webhook", subject="s", body="b")
    assert "SECRETPATH" not in str(info.value)


def test_raise_once_then_only_on_change_or_after_a_day(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    now = timezone.now()
    kwargs: dict[str, Any] = {"key": "k", "subject": "s", "body": "b", "inline": True}
    assert alerts.alert_raise(fingerprint="a", now=now, **kwargs)
    assert not alerts.alert_raise(fingerprint="a", now=now + timedelta(hours=23), **kwargs)
    assert alerts.alert_raise(fingerprint="b", now=now + timedelta(hours=23), **kwargs)
    assert not alerts.alert_raise(fingerprint="b", now=now + timedelta(hours=30), **kwargs)
    assert alerts.alert_raise(fingerprint="b", now=now + timedelta(hours=47, minutes=1), **kwargs)
    alerts.alert_clear(key="k", now=now + timedelta(hours=48))
    assert alerts.alert_raise(fingerprint="b", now=now + timedelta(hours=49), **kwargs)
    assert len(mail.outbox) == 4


def test_raise_is_queued_on_commit_and_sent_by_the_task(
    channels, eager_celery, django_capture_on_commit_callbacks
):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, body="ok")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert alerts.alert_raise(key="k", fingerprint="f", subject="s", body="b")
        assert mail.outbox == [] and len(rsps.calls) == 0  # nothing before commit
        for callback in callbacks:
            callback()
        assert len(rsps.calls) == 1
    assert len(mail.outbox) == 1


def test_failing_channel_is_retried_and_then_forgotten_so_the_next_check_raises_again(
    channels, eager_celery, django_capture_on_commit_callbacks, settings
):
    settings.ALERT_EMAIL = []
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, status=502)
        with django_capture_on_commit_callbacks(execute=True):
            alerts.alert_raise(key="k", fingerprint="f", subject="s", body="b")
        assert len(rsps.calls) == 6  # first try + 5 retries
    assert AlertState.objects.get(key="k").last_sent_at is None
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, body="ok")
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts.alert_raise(key="k", fingerprint="f", subject="s", body="b")
        assert len(rsps.calls) == 1


def test_broker_down_delivers_inline(channels, django_capture_on_commit_callbacks):
    with (
        responses.RequestsMock() as rsps,
        mock.patch(
            "accounts.tasks.send_alert.delay", side_effect=OperationalError("Connection refused")
        ),
    ):
        rsps.add(responses.POST, HOOK, body="ok")
        with django_capture_on_commit_callbacks(execute=True):
            alerts.alert_raise(key="k", fingerprint="f", subject="s", body="b")
        assert len(rsps.calls) == 1
    assert len(mail.outbox) == 1


def test_inline_delivery_failure_is_logged_not_raised(channels, caplog):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK, status=500)
        assert alerts.alert_raise(key="k", fingerprint="f", subject="s", body="b", inline=True)
    assert "not delivered by webhook" in caplog.text
    assert len(mail.outbox) == 1  # the other channel still went out


def test_no_channel_configured_only_logs(settings, caplog):
    settings.ALERT_EMAIL, settings.ALERT_WEBHOOK_URL = [], ""
    assert alerts.alert_raise(key="k", fingerprint="f", subject="Subj", body="b", inline=True)
    assert "Subj" in caplog.text and mail.outbox == []


def test_refresh_failed_alert_text(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    account = make_account(username="acme_bakery", slug="acme")
    error = instagram.InstagramAuthError("Session has expired", code=190, subcode=463)
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda fn, **kw: fn()):
        with mock.patch("accounts.tasks.send_alert.delay") as delay:
            alerts.alert_refresh_failed(account=account, error=error, needs_reconnect=True)
    kwargs = delay.call_args.kwargs
    assert kwargs["channel"] == "email"
    assert "@acme_bakery (acme) must be reconnected" in kwargs["subject"]
    assert "Session has expired (code 190/463)" in kwargs["body"]


def _alert_body(account, *, error, needs_reconnect: bool) -> str:
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda fn, **kw: fn()):
        with mock.patch("accounts.tasks.send_alert.delay") as delay:
            alerts.alert_refresh_failed(
                account=account, error=error, needs_reconnect=needs_reconnect
            )
    return delay.call_args.kwargs["body"]


def test_the_reconnect_alert_says_the_token_is_no_longer_served(channels, settings):
    """A needs_reconnect token is not served (503, the JS global is null): the
    alert must not promise it keeps being served."""
    settings.ALERT_WEBHOOK_URL = ""
    settings.CSRF_TRUSTED_ORIGINS = ["https://agent.example.com"]
    account = make_account(username="acme_bakery", slug="acme")
    error = instagram.InstagramAuthError("Session has expired", code=190, subcode=463)
    body = _alert_body(account, error=error, needs_reconnect=True)
    assert "keeps being served" not in body
    assert "/token/acme.json" in body and "answer an error" in body
    assert "feeds on your websites that use it stop" in body
    assert "until you reconnect it at https://agent.example.com/accounts/acme/" in body


def test_the_reconnect_link_is_a_path_when_the_agent_cannot_know_its_address(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", ".herokuapp.com"]
    account = make_account(username="acme_bakery", slug="acme")
    error = instagram.InstagramPermissionError("Permission lost", code=10)
    body = _alert_body(account, error=error, needs_reconnect=True)
    assert "reconnect it at the agent's page /accounts/acme/" in body
    settings.ALLOWED_HOSTS = ["localhost", "agent.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    assert alerts.agent_url("/accounts/acme/") == "https://agent.example.org/accounts/acme/"
    settings.SECURE_SSL_REDIRECT = False
    assert alerts.agent_url("/accounts/acme/") == "http://agent.example.org/accounts/acme/"


def test_a_failed_refresh_of_an_active_account_says_the_token_is_still_served(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    account = make_account(username="acme_bakery", slug="acme")
    error = instagram.InstagramTransientError("Instagram answered HTTP 500", status=500)
    body = _alert_body(account, error=error, needs_reconnect=False)
    assert "keeps being served until it expires on" in body


def test_expiring_check_alerts_daily_and_clears_when_refreshed(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    now = timezone.now()
    soon = make_account(username="soon_one", expires_in=timedelta(days=3))
    make_account(username="fine_one")
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda fn, **kw: fn()):
        with mock.patch("accounts.tasks.send_alert.delay") as delay:
            assert alerts.alerts_check_expiring(now=now) == 1
            assert alerts.alerts_check_expiring(now=now + timedelta(hours=1)) == 0
            assert alerts.alerts_check_expiring(now=now + timedelta(hours=25)) == 1
            assert delay.call_count == 2
            assert "expires in" in delay.call_args.kwargs["subject"]
            # Refreshed: the condition clears, and the next expiry would alert at once.
            soon.access_token.expires_at = now + timedelta(days=60)
            soon.access_token.save()
            assert alerts.alerts_check_expiring(now=now + timedelta(hours=26)) == 0
    assert AlertState.objects.get(key=alerts.expiring_key(soon)).cleared_at is not None


def test_expired_token_alert_says_so(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    account = make_account(username="dead_one", expires_in=-timedelta(days=1))
    InstagramAccount.objects.filter(pk=account.pk).update(status="needs_reconnect")
    with mock.patch("django.db.transaction.on_commit", side_effect=lambda fn, **kw: fn()):
        with mock.patch("accounts.tasks.send_alert.delay") as delay:
            alerts.alerts_check_expiring(now=timezone.now())
    assert "has expired" in delay.call_args.kwargs["subject"]


def test_heartbeat_alert_inline_once_then_cleared(channels, settings):
    settings.ALERT_WEBHOOK_URL = ""
    settings.REFRESH_TICK_SECONDS = 900
    now = timezone.now()
    make_account(username="old_enough")
    from accounts.models import InstagramAccount as IA

    IA.objects.update(created_at=now - timedelta(days=3))
    RefresherHeartbeat.objects.create(ran_at=now - timedelta(hours=2))
    assert alerts.alerts_check_heartbeat(now=now)
    assert not alerts.alerts_check_heartbeat(now=now + timedelta(minutes=5))
    assert len(mail.outbox) == 1 and "stopped" in mail.outbox[0].subject
    RefresherHeartbeat.objects.create(ran_at=now + timedelta(minutes=10))
    assert not alerts.alerts_check_heartbeat(now=now + timedelta(minutes=11))
    assert AlertState.objects.get(key=alerts.HEARTBEAT_KEY).cleared_at is not None


def test_fresh_install_does_not_alert_about_a_heartbeat_that_never_ran(channels):
    make_account(username="brand_new")
    assert not alerts.alerts_check_heartbeat()
    assert mail.outbox == []
