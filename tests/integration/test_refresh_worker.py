"""The refresh engine end to end: a real Celery worker process with embedded beat,
real PostgreSQL (the test database) and a private real Redis, against the sandbox
Instagram in its own process (``manage.py sandbox_server``). The worker and web
processes run ``tokenagent.settings`` configured only by environment variables.

Slow-ish (each test starts a worker): marked ``worker``, ``redis``, ``postgres``,
``slow``. Needs DATABASE_URL pointing at PostgreSQL and ``redis-server`` on PATH.
"""

import os
import signal
import time
from datetime import timedelta

import pytest
import requests
from celery import Celery
from django.core.management import call_command

from accounts.models import AccessToken, InstagramAccount, RefreshAttempt, RefresherHeartbeat
from harness.processes import child_pids, free_port, wait_for
from harness.refresh import (
    AlertReceiver,
    web_process,
    worker_process,
)
from tests.factories import make_account
from tests.integration import PROCESS_MARKS

pytestmark = PROCESS_MARKS

TICK = 2  # seconds between beat ticks in these tests


@pytest.fixture
def instagram(sandbox_process):
    """The sandbox Instagram (tests/sandbox_control.py): mint, fail, delay, calls."""
    return sandbox_process


def refresh_calls(sandbox) -> int:
    """How many refresh calls the sandbox has received (counted as they arrive)."""
    return sandbox.calls()["refresh"]


@pytest.fixture
def alert_hook():
    receiver = AlertReceiver()
    yield receiver
    receiver.close()


class Agent:
    """The agent's processes for one test; everything is stopped at teardown."""

    def __init__(self, env, logdir):
        self.env, self.logdir = env, logdir
        self.worker = worker_process(env, logdir, "--concurrency", "2")
        self.web_port = free_port()
        self.web = web_process(env, logdir, self.web_port)

    def start_worker(self):
        ticks = RefresherHeartbeat.objects.count()
        self.worker.start()
        # The start-up tick proves the worker and beat are up.
        wait_for(
            lambda: RefresherHeartbeat.objects.count() > ticks or self._dead(),
            timeout=60,
            what="the worker's first tick",
        )
        assert self.worker.running(), self.worker.log()

    def _dead(self):
        if not self.worker.running():
            raise AssertionError(f"worker exited:\n{self.worker.log()}")
        return False

    def start_web(self):
        self.web.start()
        wait_for(self._web_up, timeout=30, what="the web process")

    def _web_up(self):
        try:
            requests.get(self.url("/healthz"), timeout=2)
        except requests.RequestException:
            if not self.web.running():
                raise AssertionError(f"web exited:\n{self.web.log()}") from None
            return False
        return True

    def url(self, path):
        return f"http://127.0.0.1:{self.web_port}{path}"

    def served(self, slug):
        response = requests.get(self.url(f"/token/{slug}.json"), timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self):
        self.worker.stop()
        self.web.stop()


@pytest.fixture
def agent(agent_env_for, instagram, alert_hook, tmp_path):
    env = agent_env_for(
        instagram.base_url,
        REFRESH_TICK_SECONDS=TICK,
        REFRESH_RETRY_BACKOFF_BASE=1,
        REFRESH_RETRY_BACKOFF_MAX=2,
        REFRESH_LOCK_SECONDS=12,
        ALERT_WEBHOOK_URL=alert_hook.url,
    )
    agent = Agent(env, tmp_path)
    yield agent
    agent.stop()


def connect(instagram, username, *, age_days=8, **fields):
    """An account whose token the (fake) Instagram minted, ``age_days`` old."""
    minted = instagram.mint(username, age_hours=age_days * 24, expires_in_days=60 - age_days)
    return make_account(
        username=username,
        slug=username.replace("_", "-"),
        token=minted["access_token"],
        token_age=timedelta(days=age_days),
        expires_in=timedelta(days=60 - age_days),
        **fields,
    )


def token(account):
    return AccessToken.objects.get(account=account)


def outcomes(account):
    return list(
        RefreshAttempt.objects.filter(account=account)
        .order_by("started_at", "pk")
        .values_list("outcome", flat=True)
    )


def test_due_token_is_refreshed_end_to_end(agent, instagram):
    due = connect(instagram, "due_one", age_days=8)
    fresh = connect(instagram, "fresh_one", age_days=2)
    before = token(due)

    agent.start_web()
    agent.start_worker()
    after = wait_for(
        lambda: (t := token(due)).version > before.version and t,
        timeout=30,
        what="the refresh",
    )
    assert after.value != before.value  # the sandbox hands out a new string each time
    assert after.expires_at > before.expires_at + timedelta(days=7)
    assert after.refreshed_at is not None
    assert outcomes(due) == ["success"]
    assert RefreshAttempt.objects.get(account=due).trigger == "beat"
    assert token(fresh).version == 1 and outcomes(fresh) == []
    assert refresh_calls(instagram) == 1
    served = agent.served("due-one")
    assert served["token"] == after.value
    assert served["expires_at"].startswith(after.expires_at.strftime("%Y-%m-%dT%H:%M"))
    health = requests.get(agent.url("/healthz"), timeout=5).json()
    assert health["broker"] == "ok" and health["heartbeat"]["stale"] is False


def test_worker_killed_mid_refresh_keeps_old_token_and_refreshes_after_restart(agent, instagram):
    account = connect(instagram, "killed_one", age_days=8)
    before = token(account)
    agent.start_web()
    assert agent.served("killed-one")["token"] == before.value
    instagram.delay("refresh", 30)  # Instagram hangs: the refresh is in flight

    agent.start_worker()
    wait_for(lambda: refresh_calls(instagram), timeout=30, what="the refresh call")
    time.sleep(1)
    agent.worker.kill()  # SIGKILL the main process, the pool and beat at once

    still = token(account)
    assert (still.version, still.value, still.expires_at) == (
        before.version,
        before.value,
        before.expires_at,
    )
    assert agent.served("killed-one")["token"] == before.value
    assert outcomes(account) == []  # nothing half-written
    # The dead worker's claim is still there; it lapses after REFRESH_LOCK_SECONDS.
    assert InstagramAccount.objects.get(pk=account.pk).refresh_locked_until is not None

    instagram.delay("refresh", 0)
    agent.start_worker()
    after = wait_for(
        lambda: (t := token(account)).version > before.version and t,
        timeout=60,
        what="the refresh after the restart",
    )
    assert after.expires_at > before.expires_at
    assert outcomes(account) == ["success"]
    assert agent.served("killed-one")["expires_at"][:16] == after.expires_at.strftime(
        "%Y-%m-%dT%H:%M"
    )


def test_pool_process_killed_mid_refresh_is_redelivered_and_retried(agent, instagram, own_redis):
    """Only the pool process dies (the main process lives): the late-acked message
    is rejected and redelivered at once (task_reject_on_worker_lost); the new run
    finds the dead run's claim, waits for it to lapse, and refreshes. No beat here,
    so the redelivery alone must do it."""
    account = connect(instagram, "orphan_one", age_days=8)
    before = token(account)
    instagram.delay("refresh", 30)
    worker = worker_process(agent.env, agent.logdir, "--concurrency", "1", beat=False)
    agent.worker = worker  # stopped at teardown
    worker.start()
    Celery(broker=own_redis.url).send_task(
        "accounts.tasks.refresh_account", args=[account.pk, "hook", False]
    )
    wait_for(lambda: refresh_calls(instagram), timeout=60, what="the refresh call")
    assert worker.pid is not None
    (pool_process,) = child_pids(worker.pid)
    os.kill(pool_process, signal.SIGKILL)
    assert token(account).value == before.value and token(account).version == before.version
    instagram.delay("refresh", 0)
    after = wait_for(
        lambda: (t := token(account)).version > before.version and t,
        timeout=60,
        what="the redelivered refresh",
    )
    assert after.expires_at > before.expires_at
    assert outcomes(account) == ["success"]
    assert refresh_calls(instagram) == 2  # the killed call and the retry
    assert "WorkerLostError" in worker.log()


def test_500_three_times_then_200_ends_refreshed(agent, instagram, alert_hook):
    account = connect(instagram, "flaky_one", age_days=8)
    instagram.fail("refresh", ["http500", "http500", "http500"])
    agent.start_worker()
    wait_for(lambda: token(account).version == 2, timeout=60, what="the refresh")
    assert outcomes(account) == ["transient", "transient", "transient", "success"]
    assert refresh_calls(instagram) == 4
    account.refresh_from_db()
    assert account.status == "active" and account.last_error == ""
    assert alert_hook.posts == []


def test_error_190_marks_needs_reconnect_and_sends_exactly_one_alert(agent, instagram, alert_hook):
    account = connect(instagram, "revoked_one", age_days=8)
    instagram.fail("refresh", ["error190"])
    agent.start_worker()
    wait_for(
        lambda: InstagramAccount.objects.get(pk=account.pk).status == "needs_reconnect",
        timeout=30,
        what="needs_reconnect",
    )
    wait_for(lambda: alert_hook.posts, timeout=30, what="the alert")
    # Let beat tick a few more times: nothing more is refreshed or alerted.
    ticks = RefresherHeartbeat.objects.count()
    wait_for(
        lambda: RefresherHeartbeat.objects.count() >= ticks + 3, timeout=30, what="3 more ticks"
    )
    assert len(alert_hook.posts) == 1
    assert "must be reconnected" in alert_hook.posts[0]["text"]
    assert token(account).value not in alert_hook.posts[0]["text"]
    assert outcomes(account) == ["invalid_token"]
    assert refresh_calls(instagram) == 1


def test_two_concurrent_refreshes_of_one_account_make_one_call(
    agent, instagram, own_redis, settings
):
    account = connect(instagram, "twice_one", age_days=2, refresh_frequency="daily")
    instagram.delay("refresh", 3)
    agent.start_worker()  # the start-up tick already queues one refresh of it
    wait_for(lambda: refresh_calls(instagram), timeout=30, what="the first call")
    # A second task of the same account reaches the other pool process meanwhile...
    sender = Celery(broker=own_redis.url)
    sender.send_task("accounts.tasks.refresh_account", args=[account.pk, "hook", False])
    # ... and the command line tries too, in this process.
    settings.INSTAGRAM_GRAPH_URL = instagram.base_url
    call_command("refresh_tokens", "twice-one")
    wait_for(lambda: token(account).version == 2, timeout=30, what="the refresh")
    time.sleep(TICK * 2)
    assert refresh_calls(instagram) == 1
    assert outcomes(account) == ["success"]


def test_with_redis_stopped_tokens_are_served_from_the_database(agent, instagram, own_redis):
    connect(instagram, "steady_one", age_days=2)
    agent.start_web()
    first = agent.served("steady-one")  # now also in the Redis cache
    health = requests.get(agent.url("/healthz"), timeout=5).json()
    assert health["broker"] == "ok"

    own_redis.stop()
    started = time.monotonic()
    assert agent.served("steady-one")["token"] == first["token"]
    response = requests.get(agent.url("/healthz"), timeout=10)
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    body = response.json()
    assert body["broker"] == "down" and body["database"] == "ok"
    assert first["token"] not in response.text
