"""The feed end to end: a real web process (Granian) and a real Celery worker with
embedded beat, on PostgreSQL (the test database) and a private Redis, against the
standalone sandbox Instagram in its own process.

The owner signs in over HTTP; the feed appears with no command run, queued by the
connection itself (beat's only tick ran before the account existed). Then it keeps
being served while Redis is down, and while the sandbox is down a sync fails and
marks it stale, its posts and pictures kept. (The public /feed URLs are another
branch's; this test reads what they serve through the selectors.)
"""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from accounts.models import FeedImage, FeedSnapshot, InstagramAccount, RefresherHeartbeat
from accounts.selectors.feed import IMAGE_PATH_PREFIX, feed_get, feed_image_get
from harness.processes import wait_for
from tests.integration import PROCESS_MARKS
from tests.integration.feed_support import OWNER, POSTS, RENDITIONS, owner_env, sign_in
from tests.integration.test_refresh_worker import Agent

pytestmark = PROCESS_MARKS
BASE = "https://agent.example.com"


@pytest.fixture
def agent(agent_env_for, stoppable_sandbox, tmp_path):
    env = agent_env_for(
        stoppable_sandbox.base_url,
        # Only beat's start-up tick runs at first: what reads the new account's feed
        # is the task its connection queued.
        REFRESH_TICK_SECONDS=3600,
        REFRESH_RETRY_BACKOFF_BASE=1,
        REFRESH_RETRY_BACKOFF_MAX=2,
        REFRESH_MAX_RETRIES=1,
        FEED_SYNC_SECONDS=300,
        **owner_env(stoppable_sandbox.base_url),
    )
    agent = Agent(env, tmp_path)
    yield agent
    agent.stop()


def snapshot(account) -> FeedSnapshot | None:
    return FeedSnapshot.objects.filter(account=account).first()


def served(account) -> dict:
    return feed_get(account=account, base_url=BASE)


def pictures_served(feed: dict) -> bool:
    urls = [s["url"] for p in feed["posts"] for s in p["image"]["sizes"]]
    return bool(urls) and all(
        feed_image_get(name=u.rsplit(IMAGE_PATH_PREFIX, 1)[1]) is not None for u in urls
    )


def age(account, *, seconds: int) -> None:
    """As if the last good sync had been ``seconds`` ago (due, and stale past two periods)."""
    then = timezone.now() - timedelta(seconds=seconds)
    FeedSnapshot.objects.filter(account=account).update(synced_at=then, attempted_at=then)


def test_a_connected_accounts_feed_appears_and_outlives_redis_and_instagram(
    agent, own_redis, stoppable_sandbox, settings
):
    settings.FEED_SYNC_SECONDS = 300  # as the agent's processes have it
    agent.start_web()
    agent.start_worker()  # its start-up tick finds no account
    assert RefresherHeartbeat.objects.count() == 1

    sign_in(agent.url(""))
    account = InstagramAccount.objects.get(username=OWNER)

    # The connection queued the first sync: posts and mirrored pictures, no command run.
    wait_for(
        lambda: (
            (s := snapshot(account)) and s.synced_at and FeedImage.objects.count() == RENDITIONS
        ),
        timeout=90,
        what="the first sync of the new account's feed",
    )
    assert RefresherHeartbeat.objects.count() == 1  # no tick did it
    first = served(account)
    assert (first["account"], first["stale"], len(first["posts"])) == (account.slug, False, POSTS)
    assert pictures_served(first)
    media_calls = stoppable_sandbox.control.calls()["media"]
    assert media_calls == 1
    health = requests.get(agent.url("/healthz"), timeout=10).json()
    assert health["feeds"]["fresh"] == 1 and health["feeds"]["never_synced"] == 0

    # Redis goes down: the feed is still served, from the database; once it is older
    # than two periods it says it is stale, with every post and picture.
    own_redis.stop()
    age(account, seconds=11 * 60)
    during = served(account)
    assert during["stale"] is True
    assert during["posts"] == first["posts"] and pictures_served(during)
    assert requests.get(agent.url("/healthz"), timeout=10).status_code == 503
    assert stoppable_sandbox.control.calls()["media"] == media_calls  # nothing could sync

    # Redis is back, Instagram is down. A worker whose broker vanished under a message
    # in flight may have died of it (a kombu bug; Heroku restarts a crashed dyno): the
    # worker is restarted, now with a beat ticking every 2 s. Beat queues the due
    # sync, which fails (with a retry) and records why; the snapshot and its pictures
    # stay and are served.
    own_redis.start()
    stoppable_sandbox.stop()
    agent.worker.stop()
    agent.env["REFRESH_TICK_SECONDS"] = "2"
    agent.start_worker()
    failed = wait_for(
        lambda: (s := snapshot(account)) and s.last_error_at and s.consecutive_failures >= 2 and s,
        timeout=90,
        what="a failed sync while the sandbox is down",
    )
    assert failed.error_class == "InstagramTransientError"
    assert len(failed.posts) == POSTS and FeedImage.objects.count() == RENDITIONS
    after = served(account)
    assert after["stale"] is True
    assert after["posts"] == first["posts"] and pictures_served(after)
    assert after["updated_at"] == during["updated_at"]  # the last good sync's time
    assert agent.worker.running(), agent.worker.log()
