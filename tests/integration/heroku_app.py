"""What the Heroku parity tests share (tests/integration/test_heroku_parity.py: web and
worker dynos with Redis; test_one_dyno.py: the one-dyno formation without it; their
add-on fixtures are in conftest.py): a dyno's
config vars and processes under honcho, a browser behind Heroku's router, the sign-in,
and reads of the tokens straight from the database."""

from __future__ import annotations

import html
import os
import re
import secrets
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests

from harness import processes
from harness.processes import BIN, ROOT, free_port, signal_group

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


def dyno_env(workdir: Path, database_url: str, sandbox, **extra: str) -> dict[str, str]:
    """A dyno's environment: the config vars app.json and the add-ons set (no
    REDIS_URL unless ``extra`` gives one) and what the platform sets on a dyno."""
    (workdir / "empty.env").write_text("")
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # Config vars, as app.json and the add-ons set them.
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "WEBHOOK_SECRET": secrets.token_hex(32),
        "DATABASE_URL": database_url,
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
        "TOKENAGENT_VAR_DIR": str(workdir / "var"),
        "STATIC_ROOT": str(workdir / "staticfiles"),
        "PARITY_RUN": uuid.uuid4().hex,
    }
    env.update(extra)
    return env


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


def wait_healthy(honcho: subprocess.Popen, browser: Browser, log: Path) -> dict:
    """Wait for ``/healthz`` 200 (the web server up, the database and the broker
    answering, a recent heartbeat from beat); returns its answer."""

    def healthy() -> bool:
        assert honcho.poll() is None, tail(log)
        try:
            return browser.get("/healthz").status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(healthy, timeout=120, what="/healthz 200 (web up, worker heartbeat)")
    health = browser.get("/healthz").json()
    assert health["database"] == "ok" and health["broker"] == "ok"
    assert health["heartbeat"]["stale"] is False
    return health


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


def sign_in(browser: Browser, sandbox, dyno: Dyno) -> str:
    """Sign in as OWNER through the (sandbox) Instagram, over HTTP, as a browser
    would; returns the OAuth callback URL (its code must appear in no log)."""
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
    return callback
