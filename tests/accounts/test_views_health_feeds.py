"""GET /healthz reports feed freshness: counts for anyone (no account named), each
account's feed for a signed-in owner or the HEALTHZ_TOKEN bearer, 503 once a feed
has gone a few sync periods without a good read."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import FeedSnapshot, RefresherHeartbeat
from tests.accounts.test_views_health import HEALTHZ_TOKEN
from tests.factories import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def feeds(filesystem_broker):
    RefresherHeartbeat.objects.create(ran_at=timezone.now() - timedelta(minutes=1))
    now = timezone.now()

    def with_feed(slug, posts, synced_ago, error_ago=None):
        account = make_account(username=f"secret_{slug}", slug=f"hidden-{slug}")
        FeedSnapshot.objects.create(
            account=account,
            posts=[{"id": str(n)} for n in range(posts)],
            synced_at=now - synced_ago if synced_ago is not None else None,
            attempted_at=now - (error_ago or synced_ago or timedelta(minutes=1)),
            last_error="Instagram answered HTTP 500" if error_ago is not None else "",
            last_error_at=now - error_ago if error_ago is not None else None,
        )
        return account

    return {
        "fresh": with_feed("fresh", 12, timedelta(minutes=10)),
        "failing": with_feed("failing", 7, timedelta(minutes=50), error_ago=timedelta(minutes=5)),
        "never": make_account(username="secret_never", slug="hidden-never"),
    }


def test_public_healthz_counts_the_feeds_without_naming_them(client, feeds):
    response = client.get("/healthz")
    assert response.status_code == 200  # stale for 50 minutes is not worth a page yet
    body = response.json()
    assert body["feeds"] == {
        "feeds": 3,
        "fresh": 1,
        "stale": 2,
        "never_synced": 1,
        "alerting": 0,
        "oldest_synced_at": body["feeds"]["oldest_synced_at"],
    }
    text = response.content.decode()
    assert "hidden-" not in text and "secret_" not in text
    assert "per_account" not in body["feeds"]


@pytest.mark.parametrize("who", ["owner", "bearer"])
def test_the_owner_and_the_bearer_see_each_feed(client, feeds, settings, django_user_model, who):
    settings.HEALTHZ_TOKEN = HEALTHZ_TOKEN
    headers = {}
    if who == "owner":
        client.force_login(django_user_model.objects.create_user(username="boss", is_staff=True))
    else:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {HEALTHZ_TOKEN}"
    detail = client.get("/healthz", **headers).json()["feeds"]["per_account"]
    assert set(detail) == {"hidden-fresh", "hidden-failing", "hidden-never"}
    fresh = detail["hidden-fresh"]
    assert (fresh["state"], fresh["posts"], fresh["alerting"]) == ("fresh", 12, False)
    assert fresh["age_seconds"] in range(590, 620) and fresh["updated_at"].endswith("Z")
    assert detail["hidden-failing"]["state"] == "stale"
    assert detail["hidden-failing"]["posts"] == 7
    assert detail["hidden-never"] == {
        "state": "never_synced",
        "updated_at": None,
        "age_seconds": None,
        "posts": 0,
        "alerting": False,
    }


def test_a_wrong_bearer_sees_only_counts(client, feeds, settings):
    settings.HEALTHZ_TOKEN = HEALTHZ_TOKEN
    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {HEALTHZ_TOKEN}x")
    assert "per_account" not in response.json()["feeds"]
    assert "hidden-" not in response.content.decode()


def test_a_feed_a_few_periods_old_is_503(client, feeds):
    FeedSnapshot.objects.filter(account=feeds["failing"]).update(
        synced_at=timezone.now() - timedelta(hours=3)
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["feeds"]["alerting"] == 1
