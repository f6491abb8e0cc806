"""Drive the sandbox Instagram from tests: its control API's client
(harness/sandbox_control.py), two fixtures, and the OAuth dance over real HTTP.

- ``sandbox_live``: the sandbox mounted in pytest-django's live_server (tests/urls.py);
  settings point the agent's INSTAGRAM_* URLs at it. In-process, shares the test DB.
- ``sandbox_process``: ``manage.py sandbox_server`` in its own process on a free port,
  for tests that run the agent's processes (worker, Procfile) outside pytest.
- ``control`` and ``relative``: the control API and the sandbox's URLs through
  Django's test client (the sandbox on /sandbox/).
- ``oauth_over_http``: authorize page, Allow, code exchange, long-lived token, /me
  and /me/media against a standalone sandbox, as an app does.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness.processes import terminate
from harness.sandbox_control import SandboxControl
from tests.child_python import NO_DOTENV

ROOT = Path(__file__).resolve().parent.parent


def point_settings_at(settings, base_url: str) -> None:
    settings.INSTAGRAM_API_URL = base_url
    settings.INSTAGRAM_GRAPH_URL = base_url
    settings.INSTAGRAM_AUTHORIZE_URL = f"{base_url}/oauth/authorize"


@pytest.fixture
def sandbox_live(live_server, settings):
    """The sandbox on the live server; the agent's Instagram settings point at it."""
    control = SandboxControl(f"{live_server.url}/sandbox")
    point_settings_at(settings, control.base_url)
    control.reset()
    yield control
    control.reset()


# ``manage.py`` for a child that reads exactly the environment it is given (no .env).
_MANAGE_WITHOUT_DOTENV = (
    NO_DOTENV
    + "import sys\nfrom django.core.management import execute_from_command_line\n"
    + "execute_from_command_line(sys.argv)\n"
)


def start_sandbox_process(
    env: dict | None = None, shared_cache: bool = False, *, inherit: bool = True
):
    """Start ``manage.py sandbox_server --port 0``; returns (process, SandboxControl).
    ``inherit=False``: ``env`` is the whole environment (nothing from this process,
    no .env read), as on a production host."""
    if inherit:
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        cmd = [sys.executable, str(ROOT / "manage.py")]
    else:
        full_env = dict(env or {})
        cmd = [sys.executable, "-c", _MANAGE_WITHOUT_DOTENV]
    cmd += ["sandbox_server", "--port", "0"]
    if shared_cache:
        cmd.append("--shared-cache")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    base = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox_server exited with {proc.returncode}")
            continue
        m = re.search(r"listening on (\S+)", line)
        if m:
            base = m.group(1)
            break
    if not base:
        proc.kill()
        raise RuntimeError("sandbox_server did not start in time")
    # The server logs each request to stdout; keep draining it so a full pipe never
    # blocks the server after a few hundred requests.
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    control = SandboxControl(base)
    control.calls()  # answers
    return proc, control


def _drain(stream) -> None:
    for _ in stream:
        pass


@contextmanager
def running_sandbox(env: dict | None = None, shared_cache: bool = False, *, inherit: bool = True):
    """``start_sandbox_process`` for the duration of a ``with`` block; yields the
    SandboxControl and stops the server afterwards (SIGTERM, SIGKILL after 10 s)."""
    proc, control = start_sandbox_process(env=env, shared_cache=shared_cache, inherit=inherit)
    try:
        yield control
    finally:
        terminate(proc)


@pytest.fixture
def sandbox_process():
    with running_sandbox() as control:
        yield control


# --- Through Django's test client ---------------------------------------------------------


def control(client, action, **body):
    """POST to the sandbox's control API (mounted on /sandbox/) through ``client``."""
    return client.post(f"/sandbox/_control/{action}", json.dumps(body), "application/json")


def relative(url):
    """A sandbox URL as the test client wants it (path and query)."""
    parts = urlsplit(url)
    assert parts.netloc == "testserver"
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# --- The OAuth dance over HTTP --------------------------------------------------------------


@dataclass
class OAuthOverHttp:
    """Every answer of one dance, for the test to check; ``http`` holds its cookies."""

    http: requests.Session
    page: requests.Response  # GET the authorize page
    consent: requests.Response  # POST Allow: the redirect back with ?code=
    exchanged: requests.Response  # the code exchange (either response shape)
    short: str
    long: str
    profile: requests.Response  # GET /v21.0/me
    media: requests.Response  # GET /v21.0/me/media?fields=media_url


def oauth_over_http(
    base: str, *, authorize: dict[str, str], username: str, client_secret: str
) -> OAuthOverHttp:
    """Sign in to the standalone sandbox at ``base`` as an app does: the authorize
    page (no redirect followed), Allow as ``username``, the code exchange, the
    long-lived token, then /me and /me/media with it."""
    http = requests.Session()
    page = http.get(f"{base}/oauth/authorize", params=authorize, allow_redirects=False, timeout=10)
    consent = http.post(
        f"{base}/oauth/authorize",
        data={**authorize, "username": username, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert consent.status_code == 302, consent.text
    exchanged = http.post(
        f"{base}/oauth/access_token",
        data={
            "client_id": authorize["client_id"],
            "client_secret": client_secret,
            "grant_type": "authorization_code",
            "redirect_uri": authorize["redirect_uri"],
            "code": parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0],
        },
        timeout=10,
    )
    body = exchanged.json()
    short = (body["data"][0] if "data" in body else body)["access_token"]
    long = http.get(
        f"{base}/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": client_secret,
            "access_token": short,
        },
        timeout=10,
    ).json()["access_token"]
    profile = http.get(f"{base}/v21.0/me", params={"access_token": long}, timeout=10)
    media = http.get(
        f"{base}/v21.0/me/media",
        params={"access_token": long, "fields": "media_url"},
        timeout=10,
    )
    return OAuthOverHttp(http, page, consent, exchanged, short, long, profile, media)
