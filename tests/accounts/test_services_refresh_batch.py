"""accounts/services/refresh_batch.py: beat's refreshes in batches keep every guarantee
of one refresh (tests/accounts/test_services_refresh.py): each account refreshed
with its own token, a failure settled for that account only, a newer token kept,
the claims given back on every way out, the served token dropped after the commit."""

import threading
from datetime import timedelta
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.db import DatabaseError
from django.utils import timezone

from accounts import crypto, tasks
from accounts.models import AccessToken, AlertState, InstagramAccount, RefreshAttempt
from accounts.services import refresh_batch as batch
from accounts.services import refresh_claim as claims
from accounts.services.refresh_outcomes import NEWER_TOKEN_KEPT
from accounts.services.tokens import token_store
from tests import instagram_fakes as fakes
from tests.accounts.refresh_support import refresh_calls, token_of
from tests.factories import make_account

pytestmark = pytest.mark.django_db
Outcome = RefreshAttempt.Outcome


def old_token(n: int) -> str:
    return f"IGAAbatchOldToken{n:015d}"


def new_token(old: str) -> str:
    return old.replace("Old", "New")


def make_accounts(count: int, **kwargs) -> list[InstagramAccount]:
    return [make_account(username=f"batch_{n}", token=old_token(n), **kwargs) for n in range(count)]


def token_sent(request) -> str:
    return parse_qs(urlsplit(request.url).query)["access_token"][0]


def answer_each(ig, failures=None, before=None):
    """Instagram refreshes each token into its own new one; ``failures`` maps an old
    token to the (status, body) it gets instead; ``before(old)`` runs first."""
    failures = failures or {}

    def callback(request):
        old = token_sent(request)
        if before:
            before(old)
        if old in failures:
            status, body = failures[old]
            return status, {}, body
        return 200, {}, fakes.json.dumps(fakes.refreshed(token=new_token(old)))

    ig.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)


def history(account) -> list[str]:
    return list(
        RefreshAttempt.objects.filter(account=account)
        .order_by("pk")
        .values_list("outcome", flat=True)
    )


def ids(accounts) -> list[int]:
    return [a.pk for a in accounts]


def test_each_account_is_refreshed_with_its_own_token_and_committed(ig):
    accounts = make_accounts(5)
    before = {a.pk: token_of(a) for a in accounts}
    answer_each(ig)

    result = batch.token_refresh_batch(account_ids=ids(accounts), trigger="beat")

    assert result.outcomes == dict.fromkeys(ids(accounts), Outcome.SUCCESS)
    assert result.retry == []
    assert sorted(token_sent(c.request) for c in refresh_calls(ig)) == [
        old_token(n) for n in range(5)
    ]
    for n, account in enumerate(accounts):
        after = token_of(account)
        assert after.value == new_token(old_token(n))
        assert after.version == before[account.pk].version + 1
        assert after.refreshed_at is not None
        assert after.issued_at > before[account.pk].issued_at
        assert after.updated_at > before[account.pk].updated_at
        expected = timezone.now() + timedelta(days=60)
        assert abs(after.expires_at - expected) < timedelta(minutes=5)
        account.refresh_from_db()
        assert account.status == "active" and account.refresh_locked_until is None
        (attempt,) = RefreshAttempt.objects.filter(account=account)
        assert (attempt.outcome, attempt.trigger, attempt.attempt) == (Outcome.SUCCESS, "beat", 1)
        assert attempt.message.startswith("Refreshed; expires ")


def test_instagram_is_asked_on_several_threads_at_once(ig, settings):
    settings.REFRESH_BATCH_THREADS = 4
    accounts = make_accounts(4)
    # Each call waits for the other three: only four calls at once get through.
    together = threading.Barrier(4, timeout=10)
    answer_each(ig, before=lambda old: together.wait())

    result = batch.token_refresh_batch(account_ids=ids(accounts))

    assert set(result.outcomes.values()) == {Outcome.SUCCESS}


def test_accounts_not_due_held_elsewhere_or_not_active_are_left_alone(ig):
    due = make_account(username="due_one", token=old_token(1))
    fresh = make_account(username="fresh_one", token=old_token(2), token_age=timedelta(hours=30))
    held = make_account(username="held_one", token=old_token(3))
    gone = make_account(username="gone_one", token=old_token(4), status="needs_reconnect")
    elsewhere = claims.account_refresh_claim(account=held, now=timezone.now())
    answer_each(ig)

    result = batch.token_refresh_batch(account_ids=ids([due, fresh, held, gone]) + [987654])

    assert result.outcomes == {
        due.pk: Outcome.SUCCESS,
        fresh.pk: batch.NOT_DUE,
        held.pk: batch.BUSY,
        gone.pk: batch.BUSY,
        987654: batch.BUSY,
    }
    assert [token_sent(c.request) for c in refresh_calls(ig)] == [old_token(1)]
    assert history(fresh) == history(held) == history(gone) == []
    fresh.refresh_from_db()
    held.refresh_from_db()
    assert fresh.refresh_locked_until is None  # the batch gave its claim back
    assert held.refresh_locked_until == elsewhere  # the other refresh keeps its own
    assert token_of(held).value == old_token(3)


def test_each_failure_is_settled_for_its_account_only(
    ig, settings, django_capture_on_commit_callbacks
):
    settings.ALERT_EMAIL = ["owner@example.com"]
    ok, transient, invalid, young, limited = make_accounts(5)
    answer_each(
        ig,
        failures={
            old_token(1): (500, fakes.json.dumps(fakes.graph_error(2, message="Service down"))),
            old_token(2): (400, fakes.json.dumps(fakes.graph_error(190, message="Expired"))),
            old_token(3): (
                400,
                fakes.json.dumps(
                    fakes.graph_error(100, message="Token must be at least 24 hours old to refresh")
                ),
            ),
            old_token(4): (429, fakes.json.dumps(fakes.graph_error(4, message="Rate limited"))),
        },
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = batch.token_refresh_batch(
            account_ids=ids([ok, transient, invalid, young, limited])
        )

    assert result.outcomes[ok.pk] == Outcome.SUCCESS
    assert result.outcomes[transient.pk] == Outcome.TRANSIENT
    assert result.outcomes[invalid.pk] == Outcome.INVALID_TOKEN
    assert result.outcomes[limited.pk] == Outcome.RATE_LIMITED
    assert result.outcomes[young.pk] == Outcome.SKIPPED
    assert history(young) == [Outcome.SKIPPED]
    assert [pk for pk, _ in result.retry] == [transient.pk, limited.pk]
    assert history(transient) == [Outcome.TRANSIENT]
    assert history(invalid) == [Outcome.INVALID_TOKEN]
    for account in (transient, invalid, young, limited):
        account.refresh_from_db()
        assert account.refresh_locked_until is None
    assert token_of(transient).value == old_token(1)  # kept, served, retried later
    assert transient.status == "active" and "Service down" in transient.last_error
    assert invalid.status == "needs_reconnect"
    assert young.status == "active" and young.last_error == ""
    assert AlertState.objects.filter(key=f"refresh-failed:{invalid.pk}").exists()
    assert not AlertState.objects.filter(key=f"refresh-failed:{transient.pk}").exists()
    assert token_of(ok).value == new_token(old_token(0))


def test_a_newer_token_stored_during_the_call_wins(ig):
    (account,) = make_accounts(1)

    def reconnect(old):
        token_store(
            account=account,
            access_token="IGAAreconnectedMeanwhile000000001",
            expires_at=timezone.now() + timedelta(days=60),
        )

    answer_each(ig, before=reconnect)

    result = batch.token_refresh_batch(account_ids=[account.pk])

    assert result.outcomes == {account.pk: Outcome.SKIPPED}
    assert token_of(account).value == "IGAAreconnectedMeanwhile000000001"
    (attempt,) = RefreshAttempt.objects.filter(account=account)
    assert attempt.message == NEWER_TOKEN_KEPT
    account.refresh_from_db()
    assert account.refresh_locked_until is None


def test_an_undecryptable_token_is_a_configuration_error_and_the_rest_go_on(ig):
    broken, fine = make_accounts(2)
    AccessToken.objects.filter(account=broken).update(
        ciphertext=crypto.encrypt("x")[:-8] + "AAAAAAAA"
    )
    answer_each(ig)

    result = batch.token_refresh_batch(account_ids=ids([broken, fine]))

    assert result.outcomes == {broken.pk: Outcome.CONFIGURATION, fine.pk: Outcome.SUCCESS}
    broken.refresh_from_db()
    assert broken.status == "active" and "cannot be decrypted" in broken.last_error
    assert broken.refresh_locked_until is None


def test_a_failed_commit_keeps_the_old_tokens_and_gives_the_claims_back(ig):
    accounts = make_accounts(3)
    answer_each(ig)

    with mock.patch.object(AccessToken.objects, "bulk_update", side_effect=DatabaseError("gone")):
        with pytest.raises(DatabaseError):
            batch.token_refresh_batch(account_ids=ids(accounts))

    for n, account in enumerate(accounts):
        assert token_of(account).value == old_token(n)
        account.refresh_from_db()
        assert account.refresh_locked_until is None
        assert history(account) == []


def test_the_served_token_is_the_new_one_once_the_batch_commits(
    ig, client, fresh_cache, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        (account,) = make_accounts(1)
    assert client.get(f"/token/{account.slug}.json").json()["token"] == old_token(0)
    answer_each(ig)

    with django_capture_on_commit_callbacks(execute=True):
        batch.token_refresh_batch(account_ids=[account.pk])

    assert client.get(f"/token/{account.slug}.json").json()["token"] == new_token(old_token(0))


# --- The tasks -----------------------------------------------------------------------------


def test_the_tick_queues_one_batch_task_per_batch_size(settings):
    settings.REFRESH_BATCH_SIZE = 2
    accounts = make_accounts(5)
    with mock.patch.object(tasks.refresh_accounts, "delay") as delay:
        assert tasks.refresh_due_accounts.apply().result == 5
    batches = [call.args for call in delay.call_args_list]
    assert [len(ids_) for ids_, _ in batches] == [2, 2, 1]
    assert sorted(pk for ids_, _ in batches for pk in ids_) == sorted(ids(accounts))
    assert {trigger for _, trigger in batches} == {"beat"}


def test_a_batch_retries_each_retryable_failure_on_its_own_counting_its_attempt(ig):
    down, fine = make_accounts(2)
    answer_each(ig, failures={old_token(0): (503, "Service Unavailable")})

    with mock.patch.object(tasks.refresh_account, "apply_async") as retry:
        counts = tasks.refresh_accounts.apply(args=(ids([down, fine]), "beat")).result

    assert counts == {Outcome.TRANSIENT: 1, Outcome.SUCCESS: 1}
    (call,) = retry.call_args_list
    assert call.args == ((down.pk, "beat", False, 1),)
    assert 1 <= call.kwargs["countdown"] <= 60  # the first backoff step, with jitter


def test_the_retry_of_a_batch_failure_is_its_second_attempt(ig, eager_celery):
    (account,) = make_accounts(1)
    answer_each(ig)
    assert tasks.refresh_account.apply(args=(account.pk, "beat", False, 1)).result == "success"
    (attempt,) = RefreshAttempt.objects.filter(account=account)
    assert attempt.attempt == 2


def test_a_lost_batch_is_queued_again_by_the_next_tick_once_its_claims_lapse(
    ig, eager_celery, settings
):
    # A batch is acknowledged on receipt: a worker killed under it loses it, its
    # claims stay until they lapse, and the accounts are still due.
    assert not tasks.refresh_accounts.acks_late
    accounts = make_accounts(3)
    lapsed = timezone.now() - timedelta(seconds=settings.REFRESH_LOCK_SECONDS + 1)
    claims.accounts_refresh_claim(account_ids=ids(accounts), now=lapsed, statuses=["active"])
    answer_each(ig)

    assert tasks.refresh_due_accounts.apply().result == 3

    for n, account in enumerate(accounts):
        assert token_of(account).value == new_token(old_token(n))
