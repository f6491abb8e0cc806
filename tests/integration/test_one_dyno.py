"""Heroku parity for the one-dyno formation (app.json's default): one ``web`` dyno
runs the web server and the Celery worker with embedded beat (scripts/dyno.py),
Heroku Postgres is the only add-on. As in test_heroku_parity.py, honcho plays
Heroku's process manager, with its grace period set to Heroku's 30 s:

- build and release: ``collectstatic``, then the Procfile's ``release`` line, which
  migrates (the database cache's tables included);
- the dyno: ``honcho start web`` on a fresh database on the local PostgreSQL, with
  no ``REDIS_URL``: the broker is the dyno's own folder, the cache the database;
- Instagram: the standalone sandbox;
- the sign-in over HTTP; the feed sync its connection queues and a due refresh,
  both done by the worker inside the dyno; the token and the feed served by the
  web server from the shared cache, which the worker's writes invalidate;
- the abuse limit counted across the web server's processes (the database cache's
  atomic increment);
- shutdown as Heroku does it: SIGTERM to every process of the dyno at once, in the
  middle of a refresh; everything gone within 30 s, nothing killed, the refresh
  finished or its message back in the dyno's queue;
- then an Eco dyno's sleep: while the dyno is down the token falls due and the
  feed's period passes; at the next start beat's first tick refreshes and syncs
  both, and the account holds a token Instagram accepts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.integration.heroku_app import (
    HEROKU_KILL_WAIT,
    OWNER,
    Browser,
    Dyno,
    db_row,
    dyno_env,
    seed_old_token,
    sign_in,
    tail,
    token_state,
    wait_for,
    wait_healthy,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.timeout(600),
]

HOOK_LIMIT = 5  # RATELIMIT_HOOK in this dyno: 5 a minute


@pytest.fixture
def dyno(tmp_path, heroku_postgres, sandbox):
    env = dyno_env(tmp_path, heroku_postgres, sandbox, RATELIMIT_HOOK=f"{HOOK_LIMIT}/m")
    env.pop("REDIS_URL", None)
    d = Dyno(tmp_path, env)
    yield d
    d.kill_leftovers()


def queued_refreshes(dyno: Dyno) -> int:
    """Refresh messages waiting in the dyno's broker folder."""
    queue = Path(dyno.env["TOKENAGENT_VAR_DIR"]) / "broker" / "queue"
    return sum(1 for f in queue.iterdir() if b"accounts.tasks.refresh_account" in f.read_bytes())


def processes_of(dyno: Dyno, honcho: subprocess.Popen) -> list[int]:
    """The dyno's processes: those of the web line, without honcho (Heroku's part)."""
    return [pid for pid in dyno.pids() if _pgid(pid) not in (None, honcho.pid)]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_one_dyno_runs_web_worker_and_beat_on_postgres_alone(dyno, sandbox):
    log = dyno.workdir / "honcho.log"
    known_tokens: list[str] = []

    build = dyno.run("python", "manage.py", "collectstatic", "--noinput")
    assert build.returncode == 0, build.stderr
    release = dyno.honcho("release", log=dyno.workdir / "release.log")
    assert release.wait(timeout=180) == 0, tail(dyno.workdir / "release.log")
    tables = {
        r[0]
        for r in [
            db_row(dyno, "SELECT to_regclass('tokenagent_cache')::text"),
            db_row(dyno, "SELECT to_regclass('tokenagent_ratelimit')::text"),
        ]
    }
    assert tables == {"tokenagent_cache", "tokenagent_ratelimit"}

    honcho = dyno.honcho("web", log=log)
    browser = Browser(dyno)

    # 200 needs the web server, the broker and a recent heartbeat: beat in the dyno.
    wait_healthy(honcho, browser, log)
    # One dyno: the server's and the worker's processes, all in the web line's
    # process group (so honcho's signal and Heroku's reach the same processes).
    pids = processes_of(dyno, honcho)
    commands = " | ".join(command_of(p) for p in pids)
    assert "tokenagent.web" in commands and "celery" in commands, commands
    assert len({_pgid(p) for p in pids}) == 1, commands

    # Sign in; the connection queues the account's first feed sync.
    callback = sign_in(browser, sandbox, dyno)
    owner = token_state(dyno, OWNER)
    assert owner is not None and owner[5] == "active"
    slug = owner[0]

    # The feed, read by the in-dyno worker and served by the web server.
    def feed_served():
        response = browser.get(f"/feed/{slug}.json")
        return response.json() if response.status_code == 200 else None

    feed = wait_for(feed_served, timeout=90, what="the in-dyno worker to sync the feed")
    assert feed["posts"], feed
    assert sandbox.calls().get("media", 0) >= 1

    # A due refresh, done by the in-dyno worker; the web server serves the new token
    # at once: the worker's write dropped the entry from the shared (database) cache.
    first = browser.get(f"/token/{slug}.json").json()["token"]
    known_tokens.append(first)
    seeded_token, seeded_version = seed_old_token(dyno, sandbox, slug=slug, username=OWNER)
    known_tokens.append(seeded_token)
    wait_for(
        lambda: token_state(dyno, OWNER)[1] > seeded_version,
        timeout=60,
        what="the in-dyno worker to refresh the due token",
    )
    assert token_state(dyno, OWNER)[4] is None  # the claim was released
    served = wait_for(
        lambda: (t := browser.get(f"/token/{slug}.json").json()["token"]) not in known_tokens and t,
        timeout=10,
        what="the refreshed token to be served",
    )
    known_tokens.append(served)
    me = requests.get(f"{sandbox.base_url}/me", params={"access_token": served}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == OWNER

    # The abuse limit holds across the web server's processes and threads: of many
    # unsigned hook calls at once, exactly the budget gets through (403), the rest 429.
    statuses: list[int] = []

    def hook() -> None:
        response = requests.post(
            f"{browser.origin}/hooks/refresh/",
            headers={"X-Forwarded-Proto": "https"},  # as through the router
            allow_redirects=False,
            timeout=30,
        )
        statuses.append(response.status_code)

    callers = [threading.Thread(target=hook) for _ in range(3 * HOOK_LIMIT)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    assert sorted(set(statuses)) == [403, 429], statuses
    assert statuses.count(403) == HOOK_LIMIT, statuses

    # SIGTERM, as Heroku sends it to every process of the dyno, mid-refresh.
    sandbox.delay("refresh", 6)
    calls = sandbox.calls().get("refresh", 0)
    seeded_token, seeded_version = seed_old_token(dyno, sandbox, slug=slug, username=OWNER)
    known_tokens.append(seeded_token)
    seeded = token_state(dyno, OWNER)
    wait_for(
        lambda: sandbox.calls().get("refresh", 0) > calls,
        timeout=30,
        interval=0.1,
        what="the in-dyno worker to start refreshing",
    )
    assert token_state(dyno, OWNER)[4] is not None  # claimed, Instagram still answering
    pids = processes_of(dyno, honcho)
    sigterm = time.monotonic()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_for(
        lambda: not any(p in processes_of(dyno, honcho) for p in pids),
        timeout=HEROKU_KILL_WAIT + 10,
        interval=0.2,
        what=f"every process of the dyno to exit\n{tail(log)}",
    )
    stopped_in = time.monotonic() - sigterm
    assert stopped_in < HEROKU_KILL_WAIT, f"took {stopped_in:.1f} s\n{tail(log)}"
    honcho.wait(timeout=15)
    output = log.read_text()
    assert "SIGKILL" not in output and "still running after" not in output, tail(log)
    final = token_state(dyno, OWNER)
    completed = final[1] > seeded[1]
    assert completed or queued_refreshes(dyno) >= 1, (final, seeded, tail(log))
    assert final[5] == "active"

    # Asleep, as an Eco dyno after 30 minutes without a request: while it is down the
    # token falls due and the feed's period passes. The next start (its folder kept
    # here; on Heroku wiped) catches up at beat's first tick, from the due dates.
    sandbox.delay("refresh", 0)
    if completed:
        seeded_token, _ = seed_old_token(dyno, sandbox, slug=slug, username=OWNER)
        known_tokens.append(seeded_token)
        seeded = token_state(dyno, OWNER)
    db_row(
        dyno,
        "UPDATE accounts_feedsnapshot SET synced_at = synced_at - interval '2 hours', "
        "attempted_at = attempted_at - interval '2 hours' WHERE account_id = "
        "(SELECT id FROM accounts_instagramaccount WHERE slug = %s) RETURNING 1",
        slug,
    )
    synced_before = db_row(dyno, "SELECT max(synced_at) FROM accounts_feedsnapshot")[0]
    media_calls = sandbox.calls().get("media", 0)
    woken = time.monotonic()
    again = dyno.honcho("web", log=dyno.workdir / "again.log")
    wait_for(lambda: _answers(browser), timeout=120, what="the dyno to answer again")
    wait_for(
        lambda: token_state(dyno, OWNER)[1] > seeded[1],
        timeout=60,
        what="the refresh that fell due during the sleep",
    )
    wait_for(
        lambda: db_row(dyno, "SELECT max(synced_at) FROM accounts_feedsnapshot")[0] > synced_before,
        timeout=60,
        what="the feed sync that fell due during the sleep",
    )
    assert sandbox.calls().get("media", 0) > media_calls
    caught_up = time.monotonic() - woken
    # Within the dyno's start and one tick, not a whole feed period later.
    assert caught_up < 60, caught_up
    token = wait_for(
        lambda: (r := browser.get(f"/token/{slug}.json")).status_code == 200 and r.json()["token"],
        timeout=10,
        what="the token served after the restart",
    )
    known_tokens.append(token)
    me = requests.get(f"{sandbox.base_url}/me", params={"access_token": token}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == OWNER
    assert (
        db_row(
            dyno,
            "SELECT count(*) FROM accounts_instagramaccount WHERE refresh_locked_until > now()",
        )[0]
        == 0
    )
    for pid in processes_of(dyno, again):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    again.wait(timeout=HEROKU_KILL_WAIT + 10)

    # No token or OAuth code in any log.
    output += (dyno.workdir / "again.log").read_text() + (dyno.workdir / "release.log").read_text()
    for token in known_tokens:
        assert token not in output
    assert parse_qs(urlsplit(callback).query)["code"][0] not in output


def _answers(browser: Browser) -> bool:
    try:
        return browser.get("/healthz").status_code in (200, 503)
    except requests.ConnectionError:
        return False
