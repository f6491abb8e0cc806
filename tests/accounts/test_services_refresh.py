"""The refresh engine's service: one refresh, the claim, each failure class (the due
decision itself is tests/accounts/test_refresh_policy.py)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts import instagram
from accounts.models import (
    AccessToken,
    AlertState,
    InstagramAccount,
    RefreshAttempt,
)
from accounts.services import refresh as svc
from accounts.services import refresh_claim as claims
from accounts.services import refresh_outcomes as outcomes
from accounts.services.tokens import token_store
from tests import instagram_fakes as fakes
from tests.accounts.refresh_support import (
    OLD_TOKEN,
    add_refresh_error,
    refresh_calls,
    set_token_times,
    token_of,
)
from tests.factories import make_account

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
Outcome = RefreshAttempt.Outcome


# --- Success --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_stores_new_token_and_expiry_together(ig, account):
    fakes.register_refresh(ig)
    before = token_of(account)
    attempt = svc.token_refresh(account=account, trigger="beat")

    assert attempt.outcome == Outcome.SUCCESS and attempt.pk
    (call,) = refresh_calls(ig)
    assert call.request.method == "GET"
    assert f"access_token={OLD_TOKEN}" in call.request.url
    assert "grant_type=ig_refresh_token" in call.request.url
    after = token_of(account)
    assert after.value == fakes.REFRESHED_TOKEN
    assert after.version == before.version + 1
    assert after.refreshed_at is not None
    assert after.issued_at > before.issued_at  # the 24 h floor counts from the refresh
    assert abs(after.expires_at - (timezone.now() + timedelta(days=60))) < timedelta(minutes=5)
    account.refresh_from_db()
    assert account.status == "active" and account.last_error == ""
    assert account.refresh_locked_until is None


@pytest.mark.django_db
def test_success_clears_last_error_and_reactivates_alerts(ig, account):
    InstagramAccount.objects.filter(pk=account.pk).update(
        last_error="old failure", last_error_at=timezone.now()
    )
    AlertState.objects.create(key=f"refresh-failed:{account.pk}", last_sent_at=timezone.now())
    fakes.register_refresh(ig)
    svc.token_refresh(account=account, trigger="beat")
    account.refresh_from_db()
    assert account.last_error == "" and account.last_error_at is None
    assert AlertState.objects.get(key=f"refresh-failed:{account.pk}").cleared_at is not None


@pytest.mark.django_db
def test_old_token_is_served_until_the_new_one_commits(ig, account):
    seen = []

    def callback(request):
        seen.append(token_of(account).value)
        return (200, {}, '{"access_token": "IGAAnewOne123456789", "expires_in": 5183944}')

    ig.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)
    svc.token_refresh(account=account, trigger="beat")
    assert seen == [OLD_TOKEN]
    assert token_of(account).value == "IGAAnewOne123456789"


@pytest.mark.django_db
def test_not_due_makes_no_call_and_records_nothing(ig, account):
    set_token_times(account, age=timedelta(days=2), expires_in=timedelta(days=58))
    attempt = svc.token_refresh(account=account, trigger="beat")
    assert attempt.outcome == Outcome.SKIPPED and attempt._state.adding
    assert "Not due" in attempt.message
    assert refresh_calls(ig) == []
    assert not RefreshAttempt.objects.exists()


@pytest.mark.django_db
def test_force_refreshes_a_token_that_is_not_due(ig, account):
    set_token_times(account, age=timedelta(hours=2), expires_in=timedelta(days=60))
    fakes.register_refresh(ig)
    attempt = svc.token_refresh(account=account, trigger="command", force=True)
    assert attempt.outcome == Outcome.SUCCESS
    assert len(refresh_calls(ig)) == 1


@pytest.mark.django_db
def test_a_newer_token_stored_meanwhile_wins(ig, account):
    def callback(request):
        # A reconnect stores a brand-new token while the refresh is in flight.
        token_store(
            account=account,
            access_token="IGAAreconnectedToken99999",
            expires_at=timezone.now() + timedelta(days=60),
        )
        return (200, {}, '{"access_token": "IGAAstaleRefresh0000000", "expires_in": 5183944}')

    ig.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)
    attempt = svc.token_refresh(account=account, trigger="beat")
    assert attempt.outcome == Outcome.SKIPPED and "newer token" in attempt.message
    assert token_of(account).value == "IGAAreconnectedToken99999"


# --- Failure classes -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "exc", "outcome"),
    [
        (lambda rsps: add_refresh_error(rsps, status=500, body={}), "Transient", "transient"),
        (lambda rsps: add_refresh_error(rsps, code=2, status=500), "Transient", "transient"),
        (lambda rsps: add_refresh_error(rsps, code=1), "Transient", "transient"),
        (
            lambda rsps: rsps.add(
                responses.GET, fakes.REFRESH_URL, body=instagram.requests.ConnectTimeout()
            ),
            "Transient",
            "transient",
        ),
        (lambda rsps: add_refresh_error(rsps, code=4), "RateLimit", "rate_limited"),
        (
            lambda rsps: rsps.add(responses.GET, fakes.REFRESH_URL, body="<html>oops</html>"),
            "MalformedResponse",
            "malformed",
        ),
    ],
    ids=["http500", "code2", "code1", "timeout", "rate_limit", "non_json"],
)
def test_retryable_failures_are_recorded_and_raised_keeping_the_token(
    ig, account, setup, exc, outcome
):
    setup(ig)
    with pytest.raises(instagram.InstagramError) as info:
        svc.token_refresh(account=account, trigger="beat")
    assert exc in type(info.value).__name__
    assert outcomes.is_retryable(info.value)
    assert token_of(account).value == OLD_TOKEN
    attempt = RefreshAttempt.objects.get(account=account)
    assert attempt.outcome == outcome
    account.refresh_from_db()
    assert account.status == "active"
    assert account.last_error and account.last_error_at
    assert account.refresh_locked_until is None  # the claim was given back
    assert not AlertState.objects.exists()  # the task decides when it is "for good"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "subcode", "outcome"),
    [
        (190, None, "invalid_token"),
        (190, 463, "invalid_token"),
        (102, None, "invalid_token"),
        (10, None, "permission"),
        (200, None, "permission"),
    ],
)
def test_invalid_token_or_lost_permission_needs_reconnect_and_alerts_once(
    ig, account, settings, django_capture_on_commit_callbacks, eager_celery, code, subcode, outcome
):
    settings.ALERT_EMAIL = ["owner@example.com"]
    add_refresh_error(ig, code=code, subcode=subcode)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = svc.token_refresh(account=account, trigger="beat")
    assert attempt.outcome == outcome
    assert (attempt.ig_code, attempt.ig_subcode) == (code, subcode)
    account.refresh_from_db()
    assert account.status == "needs_reconnect"
    assert token_of(account).value == OLD_TOKEN  # kept, for the record; no longer served
    assert len(mail.outbox) == 1
    assert "reconnect" in mail.outbox[0].subject
    assert OLD_TOKEN not in mail.outbox[0].body

    # Asked again (forced), the same condition does not alert a second time.
    add_refresh_error(ig, code=code, subcode=subcode)
    with django_capture_on_commit_callbacks(execute=True):
        svc.token_refresh(account=account, trigger="manual", force=True)
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_token_marked_needs_reconnect_stops_being_served_at_once(
    ig, account, client, django_capture_on_commit_callbacks
):
    """The status change is saved through the ORM: the token cache's receivers drop
    the served entry on commit, with no explicit invalidation in the service."""
    assert client.get("/token/acme.json").json()["token"] == OLD_TOKEN  # now cached
    assert client.get("/token.json").status_code == 200
    add_refresh_error(ig, code=190)
    with django_capture_on_commit_callbacks(execute=True):
        svc.token_refresh(account=account, trigger="beat")
    response = client.get("/token/acme.json")
    assert response.status_code == 503 and response.json()["error"] == "needs_reconnect"
    assert client.get("/token.json").json()["error"] == "needs_reconnect"
    assert OLD_TOKEN not in client.get("/token/acme.js").content.decode()


@pytest.mark.django_db
def test_no_refresh_path_writes_an_account_with_a_queryset_update(ig, account, monkeypatch):
    """Every account write goes through save(), which the cache receivers see; only
    the claim, which nothing serves, is a conditional UPDATE of its one column."""
    from django.db.models import QuerySet

    real_update = QuerySet.update
    claims = []

    def update(self, **kwargs):
        if self.model is InstagramAccount and set(kwargs) == {"refresh_locked_until"}:
            claims.append(kwargs["refresh_locked_until"])
        else:
            assert self.model not in (InstagramAccount, AccessToken), kwargs
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update)
    add_refresh_error(ig, status=500, body={})
    with pytest.raises(instagram.InstagramTransientError):
        svc.token_refresh(account=account, trigger="beat")
    add_refresh_error(ig, code=190)
    svc.token_refresh(account=account, trigger="beat")
    outcomes.token_refresh_give_up(
        account=account, error=instagram.InstagramTransientError("x"), attempts=3
    )
    account.refresh_from_db()
    assert account.status == "needs_reconnect" and account.refresh_locked_until is None
    # Two refreshes: each claimed the account and gave the claim back.
    assert len(claims) == 4 and claims[1] is None and claims[3] is None


@pytest.mark.django_db
def test_messages_are_redacted(ig, account):
    add_refresh_error(
        ig, code=190, message=f"Invalid OAuth access token - Cannot parse {OLD_TOKEN}"
    )
    attempt = svc.token_refresh(account=account, trigger="beat")
    account.refresh_from_db()
    assert OLD_TOKEN not in attempt.message and OLD_TOKEN not in account.last_error
    assert "Cannot parse" in attempt.message


@pytest.mark.django_db
def test_too_young_is_skipped_quietly(ig, account, settings, django_capture_on_commit_callbacks):
    settings.ALERT_EMAIL = ["owner@example.com"]
    add_refresh_error(ig, code=100, message="Token must be at least 24 hours old to refresh")
    with django_capture_on_commit_callbacks(execute=True):
        attempt = svc.token_refresh(account=account, trigger="command", force=True)
    assert attempt.outcome == Outcome.SKIPPED and attempt.pk
    account.refresh_from_db()
    assert account.status == "active" and account.last_error == ""
    assert mail.outbox == []


@pytest.mark.django_db
def test_configuration_error_alerts_without_retry_and_keeps_account_active(
    ig, account, settings, django_capture_on_commit_callbacks, eager_celery
):
    settings.ALERT_EMAIL = ["owner@example.com"]
    add_refresh_error(ig, code=100)
    with django_capture_on_commit_callbacks(execute=True):
        attempt = svc.token_refresh(account=account, trigger="beat")
    assert attempt.outcome == Outcome.CONFIGURATION
    account.refresh_from_db()
    assert account.status == "active" and account.last_error
    assert len(mail.outbox) == 1 and "failed" in mail.outbox[0].subject


@pytest.mark.django_db
def test_give_up_alerts_once_and_keeps_token(
    account, settings, django_capture_on_commit_callbacks, eager_celery
):
    settings.ALERT_EMAIL = ["owner@example.com"]
    error = instagram.InstagramTransientError("Instagram answered HTTP 500", status=500)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            outcomes.token_refresh_give_up(account=account, error=error, attempts=6)
    assert len(mail.outbox) == 1
    assert "after 6 attempts" in mail.outbox[0].body
    assert token_of(account).value == OLD_TOKEN
    account.refresh_from_db()
    assert account.status == "active" and "HTTP 500" in account.last_error


@pytest.mark.django_db
def test_needs_reconnect_is_skipped_unless_forced(ig, account):
    InstagramAccount.objects.filter(pk=account.pk).update(status="needs_reconnect")
    attempt = svc.token_refresh(account=account, trigger="beat")
    assert attempt.outcome == Outcome.SKIPPED and attempt._state.adding
    assert refresh_calls(ig) == []
    fakes.register_refresh(ig)
    attempt = svc.token_refresh(account=account, trigger="manual", force=True)
    assert attempt.outcome == Outcome.SUCCESS
    account.refresh_from_db()
    assert account.status == "active"


@pytest.mark.django_db
def test_disconnected_is_never_refreshed(ig, account):
    InstagramAccount.objects.filter(pk=account.pk).update(status="disconnected")
    attempt = svc.token_refresh(account=account, trigger="manual", force=True)
    assert attempt.outcome == Outcome.SKIPPED and "disconnected" in attempt.message
    assert refresh_calls(ig) == []


@pytest.mark.django_db
def test_account_without_token_is_skipped(ig):
    account = make_account(token=None)
    attempt = svc.token_refresh(account=account, trigger="manual", force=True)
    assert attempt.outcome == Outcome.SKIPPED and "no token" in attempt.message
    assert refresh_calls(ig) == []


# --- The claim -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_held_claim_blocks_a_second_refresh_without_calling_instagram(ig, account):
    claim = claims.account_refresh_claim(account=account, now=timezone.now())
    assert claim is not None
    with pytest.raises(svc.RefreshInProgress) as info:
        svc.token_refresh(account=account, trigger="hook")
    assert info.value.locked_until == claim
    assert refresh_calls(ig) == []
    # The holder's claim is untouched by the refused attempt.
    account.refresh_from_db()
    assert account.refresh_locked_until == claim


@pytest.mark.django_db
def test_a_lapsed_claim_can_be_taken(ig, account, settings):
    settings.REFRESH_LOCK_SECONDS = 150
    past = timezone.now() - timedelta(minutes=10)
    assert claims.account_refresh_claim(account=account, now=past) is not None
    fakes.register_refresh(ig)
    assert svc.token_refresh(account=account, trigger="beat").outcome == Outcome.SUCCESS


@pytest.mark.django_db
def test_release_does_not_free_someone_elses_claim(account):
    now = timezone.now()
    mine = claims.account_refresh_claim(account=account, now=now - timedelta(minutes=10))
    theirs = claims.account_refresh_claim(account=account, now=now)
    assert mine is not None
    claims.account_refresh_release(account=account, claim=mine)
    account.refresh_from_db()
    assert account.refresh_locked_until == theirs


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_make_exactly_one_call():
    account = make_account(username="concurrent", slug="concurrent")
    in_flight = threading.Event()
    release = threading.Event()
    results: list = []

    def callback(request):
        in_flight.set()
        release.wait(10)
        return (200, {}, '{"access_token": "IGAAconcurrentNew00001", "expires_in": 5183944}')

    def run():
        try:
            results.append(svc.token_refresh(account=account, trigger="beat").outcome)
        except svc.RefreshInProgress:
            results.append("busy")
        finally:
            connection.close()

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)
        first = threading.Thread(target=run)
        first.start()
        assert in_flight.wait(10)
        second = threading.Thread(target=run)
        second.start()
        second.join(10)
        release.set()
        first.join(10)
        assert len(refresh_calls(rsps)) == 1
    assert sorted(results) == ["busy", "success"]

    # And a late duplicate (e.g. a redelivered task) finds nothing due: still one call.
    with responses.RequestsMock() as rsps:
        attempt = svc.token_refresh(account=account, trigger="beat")
        assert attempt.outcome == Outcome.SKIPPED and attempt._state.adding
        assert len(rsps.calls) == 0
    assert token_of(account).value == "IGAAconcurrentNew00001"
