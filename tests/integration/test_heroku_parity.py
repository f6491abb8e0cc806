"""Heroku parity: the real Procfile, run the way a Heroku app runs it.

What Heroku does, and what this test does in its place:

- build: the buildpack runs ``collectstatic`` -> the same command, DEBUG off;
- release phase: the Procfile's ``release`` line in a one-off dyno, before the new
  dynos start -> ``honcho start release`` on its own (honcho, like foreman, would
  stop every process when ``release`` exits, deploy-conventions.md §6);
- dynos: ``web`` and ``worker`` with ``PORT``, ``WEB_CONCURRENCY`` and config vars ->
  ``honcho start web worker`` with the same environment and nothing else;
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

import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import requests

from harness import processes
from harness.processes import BIN, ROOT, PrivateRedis, free_port, signal_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.timeout(600),
]

OWNER = "acme_bakery"
IMPORTED = "acme_studio"  # Token Agent's STARTING_TOKEN, imported by the release phase
HEROKU_KILL_WAIT = 30  # seconds from SIGTERM to SIGKILL on a dyno

# honcho with Heroku's grace period instead of its own 5 s.
HONCHO = (
    "import sys, honcho.manager as m; m.KILL_WAIT = int(sys.argv.pop(1)); "
    "from honcho.command import main; sys.argv[0] = 'honcho'; main()"
)


# This test polls a little less often, and shows longer log tails, than the defaults.
wait_for = partial(processes.wait_for, interval=0.3)
tail = partial(processes.tail, lines=60)


# --- Add-ons --------------------------------------------------------------------------------


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


@pytest.fixture
def heroku_postgres():
    """A fresh, empty database, as the add-on provisions; dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = _admin_url()
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc.__class__.__name__})")
    name = f"tokenagent_parity_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


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
def sandbox():
    from tests.sandbox_control import running_sandbox

    with running_sandbox(env={"DJANGO_SETTINGS_MODULE": "tests.settings"}) as control:
        yield control


# --- The dyno --------------------------------------------------------------------------------


class Dyno:
    """The app's config vars and the processes started with them."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.marker = env["PARITY_RUN"]
        self.procs: list[tuple[subprocess.Popen, BinaryIO]] = []

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """A one-off command (``heroku run``)."""
        return subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def honcho(self, *processes: str, log: Path) -> subprocess.Popen:
        out = open(log, "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-c", HONCHO, str(HEROKU_KILL_WAIT), "-f", str(ROOT / "Procfile"),
             "-d", str(ROOT), "-e", str(self.workdir / "empty.env"), "--no-colour",
             "start", *processes],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.procs.append((proc, out))
        return proc

    def pids(self) -> list[int]:
        """Every live process started with this dyno's environment."""
        found = []
        needle = f"PARITY_RUN={self.marker}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle not in f.read().split(b"\0"):
                        continue
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue  # exited, waiting to be reaped
            except OSError:
                continue
            found.append(int(entry))
        return found

    def kill_leftovers(self) -> None:
        for proc, log_file in self.procs:
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log_file.close()
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def dyno(tmp_path, heroku_postgres, heroku_redis, sandbox):
    (tmp_path / "empty.env").write_text("")
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # Config vars, as app.json and the add-ons set them.
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "WEBHOOK_SECRET": secrets.token_hex(32),
        "DATABASE_URL": heroku_postgres,
        "REDIS_URL": heroku_redis[0],
        "INSTAGRAM_APP_ID": "1234567890123456",
        "INSTAGRAM_APP_SECRET": "parity-app-secret",
        "INSTAGRAM_AUTHORIZE_URL": sandbox.authorize_url(),
        "INSTAGRAM_API_URL": sandbox.base_url,
        "INSTAGRAM_GRAPH_URL": sandbox.base_url,
        "OWNER_INSTAGRAM_USERNAMES": OWNER,
        "ALLOWED_DOMAINS": "example.com",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # What the platform sets on a dyno (WEB_CONCURRENCY: Basic's value; DYNO
        # is what tells the agent its X-Forwarded-Proto comes from the router).
        "DYNO": "web.1",
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "2",
        # Fast beat ticks, so a due token is seen within seconds.
        "REFRESH_TICK_SECONDS": "3",
        # Each dyno has its own disk.
        "TOKENAGENT_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
        "PARITY_RUN": uuid.uuid4().hex,
    }
    d = Dyno(tmp_path, env)
    yield d
    d.kill_leftovers()


# --- Talking to it like a browser behind Heroku's router -------------------------------------


class Browser:
    def __init__(self, dyno: Dyno) -> None:
        self.origin = f"http://127.0.0.1:{dyno.port}"
        self.http = requests.Session()

    def to_dyno(self, url: str) -> str:
        """The agent's public https:// URL, as the router forwards it to the dyno."""
        parts = urlsplit(url)
        if parts.netloc == urlsplit(self.origin).netloc:
            return urlunsplit(parts._replace(scheme="http", fragment=""))
        return url

    def _send(self, method: str, url: str, **kw) -> requests.Response:
        url = self.to_dyno(url if "://" in url else self.origin + url)
        headers = {"X-Forwarded-Proto": "https"} if url.startswith(self.origin) else {}
        response = self.http.request(
            method, url, headers=headers, allow_redirects=False, timeout=30, **kw
        )
        # The browser talks https to the router, so its Secure cookies (session, CSRF)
        # go back with every request; the dyno itself sees plain HTTP.
        for cookie in self.http.cookies:
            cookie.secure = False
        return response

    def get(self, url: str) -> requests.Response:
        return self._send("GET", url)

    def post(self, url: str, data: dict) -> requests.Response:
        return self._send("POST", url, data=data)


def form_fields(page: str) -> dict[str, str]:
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


# --- Reading the database and the broker ---------------------------------------------------


def db_row(dyno: Dyno, sql: str, *params):
    import psycopg

    with psycopg.connect(dyno.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()


def token_state(dyno: Dyno, username: str):
    """(slug, version, refreshed_at, expires_at, refresh_locked_until, status)."""
    return db_row(
        dyno,
        "SELECT a.slug, t.version, t.refreshed_at, t.expires_at, a.refresh_locked_until, "
        "a.status FROM accounts_instagramaccount a "
        "JOIN accounts_accesstoken t ON t.account_id = a.id WHERE a.username = %s",
        username,
    )


SEED = """
import sys
from datetime import datetime, timezone
from accounts.models import AccessToken, InstagramAccount
from accounts.services.tokens import token_store
slug, token, issued, expires = sys.argv[-4:]
account = InstagramAccount.objects.get(slug=slug)
token_store(
    account=account,
    access_token=token,
    issued_at=datetime.fromtimestamp(int(issued), tz=timezone.utc),
    expires_at=datetime.fromtimestamp(int(expires), tz=timezone.utc),
    permissions=["instagram_business_basic"],
)
# As if no refresh had happened since: the schedule counts from the later of the two.
AccessToken.objects.filter(account=account).update(refreshed_at=None)
print("seeded version", AccessToken.objects.get(account=account).version)
"""


def seed_old_token(dyno: Dyno, sandbox, *, slug: str, username: str) -> tuple[str, int]:
    """Give the account a real sandbox token issued eight days ago: due for a weekly
    refresh, and old enough for Instagram's 24-hour rule. Done the way an operator
    would, in a one-off process (``heroku run``)."""
    minted = sandbox.mint(username=username, age_hours=8 * 24)
    script = dyno.workdir / "seed.py"
    script.write_text(SEED)
    code = f"import sys; sys.argv += {[slug, minted['access_token'], str(minted['issued_at']), str(minted['expires_at'])]!r}; exec(open({str(script)!r}).read())"  # noqa: E501
    result = dyno.run("python", "manage.py", "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    # The worker may refresh it the moment it is written: compare with this version.
    seeded = re.search(r"seeded version (\d+)", result.stdout)
    assert seeded, result.stdout
    version = int(seeded.group(1))
    return minted["access_token"], version


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

    def healthy():
        assert honcho.poll() is None, tail(log)
        try:
            return browser.get("/healthz").status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(healthy, timeout=120, what="/healthz 200 (web up, worker heartbeat)")
    health = browser.get("/healthz").json()
    assert health["database"] == "ok" and health["broker"] == "ok"
    assert health["heartbeat"]["stale"] is False
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
    start = browser.get("/login/")
    assert start.status_code == 302, start.text
    authorize = start.headers["Location"]
    assert authorize.startswith(sandbox.authorize_url())
    query = parse_qs(urlsplit(authorize).query)
    assert query["redirect_uri"] == [f"https://127.0.0.1:{dyno.port}/oauth/instagram/callback/"]
    consent = browser.get(authorize)
    assert consent.status_code == 200
    fields = form_fields(consent.text)
    assert fields["state"] == query["state"][0]
    back = browser.post(authorize.split("?")[0], {**fields, "username": OWNER, "decision": "allow"})
    assert back.status_code == 302
    callback = back.headers["Location"]
    assert callback.startswith(f"https://127.0.0.1:{dyno.port}/oauth/instagram/callback/?code=")
    landed = browser.get(callback)
    assert landed.status_code == 302, landed.text
    dashboard = browser.get(landed.headers["Location"])
    assert dashboard.status_code == 200
    assert f"@{OWNER}" in dashboard.text or OWNER in dashboard.text
    assert "Content-Security-Policy" in dashboard.headers
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
