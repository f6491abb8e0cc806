"""The feed's task wiring (accounts/tasks.py ``sync_feed``, the beat tick's fan-out)
over real HTTP against the sandbox Instagram on the live server: retries of
transient failures with the refresh's backoff, no retry for what retrying cannot
fix, the due re-check, one task per feed. The sync itself is covered by
test_services_feed.py."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts import instagram, tasks
from accounts.models import FeedSnapshot, RefresherHeartbeat
from accounts.services.feed import feed_sync_claim
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(feed_sandbox):
    feed_sandbox.feed(count=3)  # a small feed: 3 posts, 5 pictures
    return feed_sandbox


def connected(sandbox, username="acme_bakery", slug="acme", **fields):
    """An account whose token the sandbox minted; not due for a refresh, so a tick
    only reads feeds."""
    sandbox.feed(username=username, count=3)
    token = sandbox.mint(username=username)["access_token"]
    return make_account(
        slug=slug, username=username, token=token, token_age=timedelta(hours=2), **fields
    )


def snapshot(account):
    return FeedSnapshot.objects.get(account=account)


def media_calls(sandbox):
    return sandbox.calls()["media"]


def test_a_sync_task_reads_the_feed(sandbox, eager_celery):
    account = connected(sandbox)
    assert tasks.sync_feed.apply(args=(account.pk,)).result == "synced"
    assert len(snapshot(account).posts) == 3
    assert media_calls(sandbox) == 1


def test_transient_failures_are_retried_then_the_feed_is_read(sandbox, eager_celery):
    account = connected(sandbox)
    sandbox.fail("media", ["http500", "http503", "transient2"])
    result = tasks.sync_feed.apply(args=(account.pk,))
    assert result.result == "synced"
    assert media_calls(sandbox) == 4
    row = snapshot(account)
    assert len(row.posts) == 3 and row.consecutive_failures == 0 and row.last_error == ""


def test_retries_stop_after_the_refresh_limit_and_keep_the_snapshot(
    sandbox, eager_celery, settings
):
    settings.REFRESH_MAX_RETRIES = 2
    account = connected(sandbox)
    tasks.sync_feed.apply(args=(account.pk,))
    sandbox.mode("media", "http500")
    result = tasks.sync_feed.apply(args=(account.pk, True))
    assert result.result == "failed"
    assert media_calls(sandbox) == 1 + 3  # the good sync, then one try and 2 retries
    row = snapshot(account)
    assert len(row.posts) == 3  # the last good snapshot stays
    assert row.consecutive_failures == 3 and row.error_class == "InstagramTransientError"


def test_malformed_answers_retry_only_a_few_times(sandbox, eager_celery, settings):
    settings.REFRESH_MALFORMED_MAX_RETRIES = 1
    account = connected(sandbox)
    sandbox.mode("media", "non_json")
    assert tasks.sync_feed.apply(args=(account.pk,)).result == "failed"
    assert media_calls(sandbox) == 2


@pytest.mark.parametrize("kind", ["error190", "permission10", "config100"])
def test_what_retrying_cannot_fix_is_not_retried(sandbox, eager_celery, kind):
    account = connected(sandbox)
    sandbox.fail("media", [kind])
    assert tasks.sync_feed.apply(args=(account.pk,)).result == "failed"
    assert media_calls(sandbox) == 1


def test_a_rate_limit_waits_for_instagrams_hint(sandbox, settings):
    account = connected(sandbox)
    sandbox.fail("media", ["http429"])  # Retry-After: 120
    with mock.patch.object(tasks.sync_feed, "retry", side_effect=RuntimeError) as retry:
        with pytest.raises(RuntimeError):
            tasks.sync_feed.run(account.pk)
    assert retry.call_args.kwargs["countdown"] == 120
    assert snapshot(account).retry_not_before is not None


def test_the_retry_countdown_is_the_refreshs(sandbox):
    account = connected(sandbox)
    sandbox.fail("media", ["http500"])
    with (
        mock.patch.object(tasks.sync_feed, "retry", side_effect=RuntimeError) as retry,
        mock.patch("accounts.tasks.random.uniform", side_effect=lambda a, b: b),
    ):
        with pytest.raises(RuntimeError):
            tasks.sync_feed.run(account.pk)
    error = instagram.InstagramTransientError("x")
    with mock.patch("accounts.tasks.random.uniform", side_effect=lambda a, b: b):
        assert retry.call_args.kwargs["countdown"] == tasks.retry_countdown(error, 0) == 60


def test_a_feed_that_is_not_due_is_left_alone_unless_forced(sandbox, eager_celery):
    account = connected(sandbox)
    tasks.sync_feed.apply(args=(account.pk,))
    assert tasks.sync_feed.apply(args=(account.pk,)).result == "not_due"
    assert media_calls(sandbox) == 1
    assert tasks.sync_feed.apply(args=(account.pk, True)).result == "synced"
    assert media_calls(sandbox) == 2


def test_a_feed_another_worker_is_reading_is_left_to_it(sandbox, eager_celery):
    account = connected(sandbox)
    row = FeedSnapshot.objects.create(account=account)
    feed_sync_claim(snapshot=row, now=timezone.now())
    assert tasks.sync_feed.apply(args=(account.pk, True)).result == "busy"
    assert media_calls(sandbox) == 0


def test_missing_and_disconnected_accounts_are_no_ops(sandbox, eager_celery):
    assert tasks.sync_feed.apply(args=(987654,)).result == "missing"
    gone = connected(sandbox, status="disconnected")
    assert tasks.sync_feed.apply(args=(gone.pk, True)).result == "skipped"
    assert media_calls(sandbox) == 0


def test_the_tick_fans_out_one_sync_per_due_feed(sandbox, eager_celery, settings):
    settings.ALERT_EMAIL = []
    due = connected(sandbox, username="due_one", slug="due-one")
    fresh = connected(sandbox, username="fresh_one", slug="fresh-one")
    tasks.sync_feed.apply(args=(fresh.pk,))
    reconnect = connected(sandbox, username="lost_one", slug="lost-one", status="needs_reconnect")
    calls = media_calls(sandbox)

    tasks.refresh_due_accounts.apply()

    assert RefresherHeartbeat.objects.count() == 1
    assert media_calls(sandbox) == calls + 1
    assert len(snapshot(due).posts) == 3
    assert not FeedSnapshot.objects.filter(account=reconnect).exists()


def test_one_failing_feed_does_not_stop_the_others(sandbox, eager_celery, settings):
    settings.REFRESH_MAX_RETRIES = 0
    bad = connected(sandbox, username="bad_one", slug="bad-one")
    good = connected(sandbox, username="good_one", slug="good-one")
    sandbox.revoke("bad_one")  # its token answers 190
    tasks.refresh_due_accounts.apply()
    assert snapshot(bad).error_class == "InstagramAuthError" and snapshot(bad).posts == []
    assert len(snapshot(good).posts) == 3


def test_two_ticks_while_the_worker_is_busy_make_one_sync(sandbox, settings):
    """The tick queues a feed again while its first task still waits in the queue;
    the second task finds it read and does nothing."""
    account = connected(sandbox)
    with mock.patch.object(tasks.sync_feed, "delay") as delay:
        tasks.refresh_due_accounts.apply()
        tasks.refresh_due_accounts.apply()
    assert [c.args for c in delay.call_args_list] == [(account.pk, False)] * 2
    results = [tasks.sync_feed.apply(args=tuple(c.args)).result for c in delay.call_args_list]
    assert results == ["synced", "not_due"]
    assert media_calls(sandbox) == 1


def test_a_feed_due_again_after_its_period_is_queued_again(sandbox, settings):
    account = connected(sandbox)
    tasks.sync_feed.apply(args=(account.pk,))
    with mock.patch.object(tasks.sync_feed, "delay") as delay:
        tasks.refresh_due_accounts.apply()
        assert delay.call_count == 0
        FeedSnapshot.objects.filter(account=account).update(
            synced_at=timezone.now() - timedelta(seconds=settings.FEED_SYNC_SECONDS),
            attempted_at=timezone.now() - timedelta(seconds=settings.FEED_SYNC_SECONDS),
        )
        tasks.refresh_due_accounts.apply()
        assert delay.call_count == 1


def test_the_sync_task_outlives_its_downloads_and_never_its_claim():
    soft, hard = tasks.sync_feed.soft_time_limit, tasks.sync_feed.time_limit
    assert tasks.sync_feed.acks_late and soft is not None and hard is not None
    assert soft > django_settings.FEED_SYNC_IMAGE_BUDGET_SECONDS + 60
    assert soft < hard < django_settings.FEED_SYNC_LOCK_SECONDS
    assert hard < 3600  # Redis' visibility timeout
