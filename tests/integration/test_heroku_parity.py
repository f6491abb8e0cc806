"""Heroku parity: the real Procfile, run the way a Heroku app runs it.

What Heroku does, and what this test does in its place:

- build: the buildpack runs ``collectstatic`` -> the same command, DEBUG off;
- release phase: the Procfile's ``release`` line in a one-off dyno, before the new
  dynos start -> ``honcho start release`` on its own (honcho, like foreman, would
  stop every process when ``release`` exits, deploy-conventions.md §6);
- dynos: ``web`` and ``worker`` with ``PORT``, ``WEB_CONCURRENCY`` and config vars ->
  ``honcho start web worker`` with the same environment and nothing else; this is the
  bigger formation, so ``EMBEDDED_WORKER=False`` keeps the worker out of ``web``
  (the one-dyno formation: test_one_dyno.py);
- add-ons: Heroku Postgres and Key-Value Store -> a fresh database on the local
  PostgreSQL (created and dropped here) and a private ``redis-server`` speaking TLS
  with a self-signed certificate, as the add-on does (never the shared one on 6379:
  this test stops it);
- the router: terminates TLS and sends ``X-Forwarded-Proto: https`` -> the test's
  HTTP client sends that header to ``127.0.0.1:$PORT`` and treats the agent's
  ``https://`` URLs as that address, as a browser behind the router would;
- Instagram -> the standalone sandbox Instagram (``manage.py sandbox_server``);
- shutdown: SIGTERM to every process of the dyno, SIGKILL 30 s later -> SIGTERM to
  honcho, which signals each process group. honcho's own grace period is 5 s;
  it is set to Heroku's 30 s here, and the whole stack must be gone within it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness.processes import PrivateRedis
from tests.integration.heroku_app import (
    HEROKU_KILL_WAIT,
    IMPORTED,
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
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.timeout(600),
]


# --- Add-ons: Heroku Postgres (heroku_app.py) and Key-Value Store -----------------------------


@pytest.fixture
def heroku_redis(tmp_path):
    """A private redis-server on a free port, no persistence, like a fresh add-on.
    Like Heroku Key-Value Store it speaks TLS only, with a self-signed certificate
    and a password (``rediss://``), when openssl is there to make the certificate."""
    server = PrivateRedis(
        tmp_path,
        password="kv-password",
        tls=shutil.which("openssl") is not None,
        common_name="ec2-3-4-5-6.compute-1.amazonaws.com",
    ).start()
    yield server.url, server.client()
    server.stop()


@pytest.fixture
def dyno(tmp_path, heroku_postgres, heroku_redis, sandbox):
    d = Dyno(
        tmp_path,
        dyno_env(
            tmp_path, heroku_postgres, sandbox, REDIS_URL=heroku_redis[0], EMBEDDED_WORKER="False"
        ),
    )
    yield d
    d.kill_leftovers()


# --- Reading the broker -------------------------------------------------------------------------


def broker_state(client) -> dict:
    queued = sum(client.llen(k) for k in client.keys("celery*") if client.type(k) == b"list")
    bodies = b"".join(
        b"".join(client.lrange(k, 0, -1))
        for k in client.keys("celery*")
        if client.type(k) == b"list"
    )
    return {
        "queued": queued,
        "refresh_queued": bodies.count(b"accounts.tasks.refresh_account"),
        "unacked": client.hlen("unacked"),
    }


# --- The test ------------------------------------------------------------------------------------


def test_the_procfile_runs_like_a_heroku_app(dyno, sandbox, heroku_redis):
    redis_client = heroku_redis[1]
    log = dyno.workdir / "honcho.log"
    known_tokens: list[str] = []

    # Build: collectstatic, DEBUG off, as the buildpack runs it.
    build = dyno.run("python", "manage.py", "collectstatic", "--noinput")
    assert build.returncode == 0, build.stderr
    assert (Path(dyno.env["STATIC_ROOT"]) / "staticfiles.json").is_file()

    # Release phase, with a Token Agent STARTING_TOKEN to import.
    starting = sandbox.mint(username=IMPORTED, age_hours=3 * 24)["access_token"]
    known_tokens.append(starting)
    dyno.env["STARTING_TOKEN"] = starting
    release = dyno.honcho("release", log=dyno.workdir / "release.log")
    assert release.wait(timeout=180) == 0, tail(dyno.workdir / "release.log")
    release_log = (dyno.workdir / "release.log").read_text()
    assert "Applying accounts." in release_log
    assert "STARTING_TOKEN imported" in release_log, release_log
    assert token_state(dyno, IMPORTED) is not None

    # The new release's dynos.
    honcho = dyno.honcho("web", "worker", log=log)
    browser = Browser(dyno)

    wait_healthy(honcho, browser, log)
    # Uptime monitors may use plain HTTP; everything else goes to https.
    plain = requests.get(f"{browser.origin}/healthz", timeout=10)
    assert plain.status_code == 200
    home = requests.get(f"{browser.origin}/", allow_redirects=False, timeout=10)
    assert home.status_code == 301
    assert home.headers["Location"] == f"https://127.0.0.1:{dyno.port}/"
    # Hashed static files from WhiteNoise.
    page = browser.get("/").text
    css = re.search(r'href="(/static/accounts/agent\.[0-9a-f]{12}\.css)"', page)
    assert css, page
    static = browser.get(css.group(1))
    assert static.status_code == 200 and "immutable" in static.headers["Cache-Control"]

    # Sign in through the (sandbox) Instagram, over HTTP, as a browser would.
    callback = sign_in(browser, sandbox, dyno)
    owner = token_state(dyno, OWNER)
    assert owner is not None and owner[5] == "active"

    # The worker refreshes a due token by itself (beat -> task -> Instagram -> DB).
    refreshes_before = sandbox.calls().get("refresh", 0)
    seeded_token, seeded_version = seed_old_token(dyno, sandbox, slug=owner[0], username=OWNER)
    known_tokens.append(seeded_token)

    def refreshed():
        now = token_state(dyno, OWNER)
        return now if now[1] > seeded_version and now[2] is not None else None

    after = wait_for(refreshed, timeout=60, what="the worker to refresh the due token")
    assert after[3] > owner[3]  # a new 60 days from now
    assert after[4] is None  # the claim was released
    assert sandbox.calls()["refresh"] > refreshes_before
    served = browser.get(f"/token/{owner[0]}.json").json()["token"]
    known_tokens.append(served)
    assert served not in known_tokens[:-1]  # the refreshed token, not the seeded one
    me = requests.get(f"{sandbox.base_url}/me", params={"access_token": served}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == OWNER

    # A refresh in flight when the dyno is told to stop.
    imported = token_state(dyno, IMPORTED)
    sandbox.delay("refresh", 6)
    calls = sandbox.calls().get("refresh", 0)
    seeded_token, seeded_version = seed_old_token(
        dyno, sandbox, slug=imported[0], username=IMPORTED
    )
    known_tokens.append(seeded_token)
    seeded = token_state(dyno, IMPORTED)
    assert seeded[1] == seeded_version  # Instagram answers after 6 s: not refreshed yet
    wait_for(
        lambda: sandbox.calls().get("refresh", 0) > calls,
        timeout=30,
        what="the worker to start refreshing",
        interval=0.1,
    )
    assert token_state(dyno, IMPORTED)[4] is not None  # claimed, Instagram still answering

    sigterm = time.monotonic()
    honcho.send_signal(signal.SIGTERM)
    try:
        honcho.wait(timeout=HEROKU_KILL_WAIT + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho still running {HEROKU_KILL_WAIT + 10} s after SIGTERM\n{tail(log)}")
    wait_for(lambda: not dyno.pids(), timeout=5, what="every process of the dyno to exit")
    stopped_in = time.monotonic() - sigterm
    assert stopped_in < HEROKU_KILL_WAIT, f"took {stopped_in:.1f} s\n{tail(log)}"
    # Nothing needed Heroku's SIGKILL: honcho would have said so.
    assert "SIGKILL" not in log.read_text()

    # No task lost: the refresh either finished, or its message is back in the queue
    # (never stranded among Redis' unacknowledged messages until the 1 h visibility
    # timeout); the account is not left claimed, its token whole.
    broker = broker_state(redis_client)
    assert broker["unacked"] == 0, broker
    final = token_state(dyno, IMPORTED)
    completed = final[1] > seeded[1]
    assert completed or broker["refresh_queued"] >= 1, (final, seeded, broker, tail(log))
    assert final[5] == "active"
    assert final[3] > seeded[3] if completed else final[3] == seeded[3]

    if not completed:
        # The next dyno picks the redelivered task up.
        sandbox.delay("refresh", 0)
        again = dyno.honcho("worker", log=log)
        wait_for(
            lambda: token_state(dyno, IMPORTED)[1] > seeded[1],
            timeout=60,
            what="the redelivered refresh",
        )
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=HEROKU_KILL_WAIT + 10)
    assert (
        db_row(
            dyno,
            "SELECT count(*) FROM accounts_instagramaccount WHERE refresh_locked_until > now()",
        )[0]
        == 0
    )

    # The logs: one stream, no token or OAuth code anywhere.
    output = log.read_text() + (dyno.workdir / "release.log").read_text()
    for token in known_tokens:
        assert token not in output
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert code not in output
    # Heroku's router logs the requests; the web process does not repeat them (a
    # turned-on access log is redacted too: test_deploy_settings.py).
    assert "GET /oauth/instagram/callback/" not in output
