"""Feed syncs have a queue of their own (``feeds``, tokenagent/settings.py): a
token refresh never waits behind a round of them.

The Procfile's ``worker`` line (and Procfile.dev's, on the embedded filesystem
broker ``make run`` uses) runs as written, with embedded beat, on PostgreSQL (the
test database), against the standalone sandbox Instagram answering feed listings
slowly. Beat's start-up tick queues every account's first sync, as after a deploy;
while the worker is busy with them, one account's token becomes due and its refresh
is queued the way the tick queues it. The sandbox's journal (requests in order of
arrival) shows the refresh arriving after the first few syncs, not after all of
them: the worker takes a message from each queue in turn. On one shared queue it
would come after every listing.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import AccessToken, RefresherHeartbeat
from harness import procfile_stack
from harness.processes import BIN, ROOT, Process, wait_for
from tests.integration import PROCESS_MARKS
from tests.integration.test_refresh_worker import connect

pytestmark = PROCESS_MARKS

SYNCS = 16  # feeds due at the first tick
LISTING_SECONDS = 1.5  # the sandbox's answer time for a feed listing
# A one-off process of the agent's (``heroku run``) that queues one account's refresh
# as beat's tick does, the moment it reads the account's id: started beforehand,
# so Python's start-up does not blur the moment.
QUEUE_REFRESH = """
import sys
import django
django.setup()
from accounts.services.refresher import refresh_queue
print("ready", flush=True)
print("queued", refresh_queue(account_ids=[int(sys.stdin.readline())]), flush=True)
"""


class RefreshQueuer:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-c", QUEUE_REFRESH],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._until("ready")

    def _until(self, word: str) -> str:
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:  # log lines may come first
            seen.append(line)
            if line.startswith(word):
                return line
        raise AssertionError(f"the one-off process exited: {''.join(seen)}")

    def queue(self, account_id: int) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{account_id}\n")
        self.proc.stdin.flush()
        return self._until("queued").split()[-1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(params=["Procfile-redis", "Procfile.dev-filesystem"])
def worker_env(request, pg_url, sandbox_process, tmp_path):
    """(Procfile path, the agent's environment) for each broker: the Procfile on a
    private Redis, Procfile.dev on the embedded filesystem broker (no REDIS_URL)."""
    procfile, broker = request.param.split("-")
    redis_url = ""
    if broker == "redis":
        redis_url = request.getfixturevalue("own_redis").url
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = procfile_stack.agent_env(
        database_url=pg_url,
        redis_url=redis_url,
        var_dir=var_dir,
        instagram_url=sandbox_process.base_url,
        secret_key=settings.SECRET_KEY,
        port=0,
        TOKEN_ENCRYPTION_KEY=settings.TOKEN_ENCRYPTION_KEY,
        CONN_MAX_AGE=0,
        REFRESH_TICK_SECONDS=3600,  # only the start-up tick
    )
    if not redis_url:
        del env["REDIS_URL"]
    return ROOT / procfile, env


def test_a_due_refresh_is_not_queued_behind_a_round_of_feed_syncs(
    worker_env, sandbox_process, tmp_path
):
    procfile, env = worker_env
    accounts = []
    for n in range(SYNCS):
        username = f"queue_feed_{n}"
        # Instagram issued the tokens 8 days ago, so it accepts a refresh; the agent
        # has them issued a day ago (not due) until one is made due.
        accounts.append(connect(sandbox_process, username, age_days=8))
        sandbox_process.feed(username=username, count=1)
    AccessToken.objects.update(issued_at=timezone.now() - timedelta(days=1))
    sandbox_process.delay("media", LISTING_SECONDS)
    due = accounts[-1]

    command = procfile_stack.procfile_lines(procfile)["worker"]
    assert "--queues celery,feeds" in command
    worker = Process("worker", ["bash", "-c", command], env, tmp_path)
    queuer = RefreshQueuer(env)
    ticks = RefresherHeartbeat.objects.count()
    worker.start()
    try:
        wait_for(
            lambda: RefresherHeartbeat.objects.count() > ticks or not worker.running(),
            timeout=90,
            what="the worker's start-up tick",
        )
        assert worker.running(), worker.tail()
        # Every feed's sync is queued (the tick), both pool processes are reading one.
        wait_for(
            lambda: sandbox_process.calls()["media"] >= 2,
            timeout=60,
            what="the first feed listings",
        )
        # Now a token is due, and its refresh is queued.
        before = AccessToken.objects.get(account=due).version
        AccessToken.objects.filter(account=due).update(issued_at=timezone.now() - timedelta(days=8))
        mark = len(sandbox_process.journal())
        assert queuer.queue(due.pk) == "1"
        wait_for(
            lambda: AccessToken.objects.get(account=due).version > before,
            timeout=120,
            what="the refresh",
        )
        wait_for(
            lambda: sandbox_process.calls()["media"] >= SYNCS,
            timeout=120,
            what="every feed listing",
        )
    finally:
        queuer.close()
        worker.stop()
    journal = [entry["endpoint"] for entry in sandbox_process.journal()]
    assert journal.count("refresh") == 1 and journal.count("media") == SYNCS, journal
    listings_meanwhile = journal[mark : journal.index("refresh")].count("media")
    # When the refresh was queued, each pool process held one sync (prefetch: one
    # message per process) and may not have called Instagram yet; the refresh is the
    # next message taken. On one shared queue it would come after every listing left.
    assert listings_meanwhile <= 2, (mark, journal)
    assert journal[journal.index("refresh") :].count("media") >= SYNCS // 2, (mark, journal)
