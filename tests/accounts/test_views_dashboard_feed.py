"""The dashboard shows each account's feed: when it was last read, how many posts,
whether websites get it marked stale, the last error (redacted), what the next
read is; the selector behind it never loads the posts."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import FeedSnapshot
from accounts.selectors.dashboard import dashboard_accounts
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]
TOKEN = "IGAAtestLongLivedToken0000000001"


def section(html: str, slug: str) -> str:
    match = re.search(rf'<section [^>]*id="account-{slug}".*?</section>', html, re.S)
    assert match, html
    return match.group(0)


def feed_of(slug, **fields):
    account = make_account(username=slug.replace("-", "_"), slug=slug)
    FeedSnapshot.objects.create(account=account, **fields)
    return account


def test_each_account_shows_its_feeds_age_posts_and_state(owner_client):
    now = timezone.now()
    FeedSnapshot.objects.create(
        account_id=owner_client_account_id(),
        posts=[{"id": str(n)} for n in range(12)],
        synced_at=now - timedelta(minutes=10),
        attempted_at=now - timedelta(minutes=10),
    )
    feed_of(
        "failing-shop",
        posts=[{"id": "1"}, {"id": "2"}],
        synced_at=now - timedelta(hours=3),
        attempted_at=now - timedelta(minutes=2),
        last_error=f"Instagram answered HTTP 500 (code 2) [access_token={'[redacted]'}]",
        last_error_at=now - timedelta(minutes=2),
        consecutive_failures=3,
        images_missing=2,
    )
    make_account(username="new_shop", slug="new-shop")

    html = owner_client.get("/").content.decode()

    fresh = section(html, "acme")
    assert 'data-feed-state="fresh"' in fresh
    assert "read 10\xa0minutes ago" in fresh and '<span class="feed-posts">12</span> posts' in fresh
    assert "stale" not in fresh.split('data-feed-state="fresh"')[1]
    failing = section(html, "failing-shop")
    assert 'data-feed-state="stale"' in failing
    assert "read 3\xa0hours ago" in failing and '<span class="feed-posts">2</span> posts' in failing
    assert "<strong>stale</strong>, websites are shown this copy marked stale" in failing
    assert "you were alerted" in failing
    assert "Instagram answered HTTP 500 (code 2)" in failing
    assert "2 could not be mirrored" in failing
    new = section(html, "new-shop")
    assert 'data-feed-state="never_synced"' in new and "not read yet" in new
    assert "due now" in new
    assert TOKEN not in html


def owner_client_account_id() -> int:
    from accounts.models import InstagramAccount

    return InstagramAccount.objects.get(slug="acme").pk


def test_an_error_older_than_the_last_good_read_is_not_shown(owner_client):
    now = timezone.now()
    FeedSnapshot.objects.create(
        account_id=owner_client_account_id(),
        posts=[{"id": "1"}],
        synced_at=now - timedelta(minutes=1),
        attempted_at=now - timedelta(minutes=1),
        last_error="Instagram answered HTTP 500",
        last_error_at=now - timedelta(minutes=40),
    )
    html = section(owner_client.get("/").content.decode(), "acme")
    assert "HTTP 500" not in html and 'data-feed-state="fresh"' in html


def test_the_dashboard_counts_posts_in_the_database(owner_client):
    big = [{"id": str(n), "caption": "x" * 2000} for n in range(50)]
    FeedSnapshot.objects.create(
        account_id=owner_client_account_id(), posts=big, synced_at=timezone.now()
    )
    with CaptureQueriesContext(connection) as queries:
        rows = dashboard_accounts()
    assert rows[0].feed.posts == 50
    feed_query = next(q["sql"] for q in queries if "accounts_feedsnapshot" in q["sql"])
    assert "_ARRAY_LENGTH(" in feed_query.upper()  # JSON_ (SQLite), JSONB_ (PostgreSQL)
    assert '"accounts_feedsnapshot"."posts",' not in feed_query  # never loaded
