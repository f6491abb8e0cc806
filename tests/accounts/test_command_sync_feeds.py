"""python manage.py sync_feeds [ACCOUNT ...]: in-process against the sandbox
Instagram over real HTTP (no worker), due or not, one line per account, exit 1
when any sync failed, exit 2 (and nothing read) for an unknown name."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from accounts.models import FeedImage, FeedSnapshot
from accounts.services.feed import feed_sync_claim
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)


def connected(feed_sandbox, username, *, count=3, **fields):
    feed_sandbox.feed(username=username, count=count)
    token = feed_sandbox.mint(username=username)["access_token"]
    return make_account(
        slug=username.replace("_", "-"),
        username=username,
        token=token,
        token_age=timedelta(hours=2),
        **fields,
    )


def run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("sync_feeds", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue() + f"\n!{exc}", exc.returncode
    return out.getvalue(), 0


def by_slug(output: str) -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in output.strip().splitlines() if line and line[0] != "!"
    )


def test_without_names_every_active_feed_is_read_now_one_line_each(feed_sandbox):
    connected(feed_sandbox, "one_feed", count=3)
    connected(feed_sandbox, "two_feed", count=2)
    connected(feed_sandbox, "gone_feed", status="disconnected")
    connected(feed_sandbox, "lost_feed", status="needs_reconnect")
    output, code = run()
    lines = by_slug(output)
    assert code == 0
    assert set(lines) == {"one-feed", "two-feed"}
    assert lines["one-feed"] == (
        "synced 3 posts; pictures: 5 fetched, 0 reused, 0 missing, 0 deleted"
    )
    assert lines["two-feed"].startswith("synced 2 posts; pictures: 2 fetched")
    assert feed_sandbox.calls()["media"] == 2
    assert FeedSnapshot.objects.filter(account__slug="one-feed").get().synced_at is not None


def test_a_feed_read_a_moment_ago_is_read_again(feed_sandbox):
    connected(feed_sandbox, "one_feed")
    run("one-feed")
    output, code = run("one-feed")
    assert code == 0
    assert by_slug(output)["one-feed"].startswith("synced 3 posts; pictures: 0 fetched, 5 reused")
    assert feed_sandbox.calls()["media"] == 2


def test_named_feeds_only_in_the_order_given(feed_sandbox):
    connected(feed_sandbox, "one_feed")
    connected(feed_sandbox, "two_feed")
    output, code = run("two-feed")
    assert code == 0 and list(by_slug(output)) == ["two-feed"]
    assert feed_sandbox.calls()["media"] == 1


def test_a_failure_exits_1_keeps_the_snapshot_and_the_others_go_on(feed_sandbox):
    connected(feed_sandbox, "bad_feed")
    connected(feed_sandbox, "good_feed")
    run("bad-feed")
    pictures = FeedImage.objects.count()
    feed_sandbox.fail("media", ["http500"])
    output, code = run("bad-feed", "good-feed")
    lines = by_slug(output)
    assert code == 1
    assert lines["bad-feed"].startswith("FAILED InstagramTransientError: ")
    assert lines["bad-feed"].endswith("; the last snapshot stays")
    assert lines["good-feed"].startswith("synced 3 posts")
    assert "1 feed sync(s) failed" in output
    bad = FeedSnapshot.objects.get(account__slug="bad-feed")
    assert len(bad.posts) == 3 and bad.error_class == "InstagramTransientError"
    assert FeedImage.objects.count() >= pictures  # nothing of the old snapshot went away


def test_a_named_account_needing_reconnection_fails(feed_sandbox):
    connected(feed_sandbox, "lost_feed", status="needs_reconnect")
    output, code = run("lost-feed")
    assert code == 1
    assert by_slug(output)["lost-feed"].startswith("FAILED InstagramAuthError: ")
    assert feed_sandbox.calls()["media"] == 0


def test_busy_and_disconnected_feeds_are_not_failures(feed_sandbox):
    from django.utils import timezone

    busy = connected(feed_sandbox, "busy_feed")
    connected(feed_sandbox, "gone_feed", status="disconnected")
    feed_sync_claim(snapshot=FeedSnapshot.objects.create(account=busy), now=timezone.now())
    output, code = run("busy-feed", "gone-feed")
    lines = by_slug(output)
    assert code == 0
    assert lines["busy-feed"] == "busy (another sync of this feed is running)"
    assert lines["gone-feed"] == "skipped, the account is disconnected"
    assert feed_sandbox.calls()["media"] == 0


def test_an_unknown_name_reads_nothing_and_exits_2(feed_sandbox):
    connected(feed_sandbox, "one_feed")
    output, code = run("one-feed", "nobody", "x<script>")
    assert code == 2
    assert "no such account: 'nobody', 'x?script?'; nothing was synced" in output
    assert feed_sandbox.calls()["media"] == 0
    assert not FeedSnapshot.objects.exists()


def test_the_output_never_contains_a_token(feed_sandbox):
    account = connected(feed_sandbox, "one_feed")
    token = account.access_token.value
    feed_sandbox.revoke("one_feed")  # Instagram's 190 message, token-free; and a token as a name:
    output, code = run("one-feed")
    assert code == 1 and token not in output
    output, code = run(token)
    assert code == 2 and token not in output
