"""Drive the sandbox Instagram from tests: a small client for its control API and
two fixtures.

- ``sandbox_live``: the sandbox mounted in pytest-django's live_server (tests/urls.py);
  settings point the agent's INSTAGRAM_* URLs at it. In-process, shares the test DB.
- ``sandbox_process``: ``manage.py sandbox_server`` in its own process on a free port,
  for tests that run the agent's processes (worker, Procfile) outside pytest.
"""

import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


class SandboxControl:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _post(self, action: str, **body) -> dict:
        r = self.http.post(f"{self.base_url}/_control/{action}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def reset(self) -> None:
        self._post("reset")

    def fail(self, endpoint: str, failures: list[str]) -> None:
        """Queue failures, consumed one per call to ``endpoint`` (or "*")."""
        self._post("fail", endpoint=endpoint, failures=failures)

    def mode(self, endpoint: str, failure: str | None) -> None:
        """Fail every call to ``endpoint`` with ``failure`` until set to None."""
        self._post("mode", endpoint=endpoint, failure=failure)

    def delay(self, endpoint: str, seconds: float) -> None:
        self._post("delay", endpoint=endpoint, seconds=seconds)

    def shape(self, shape: str) -> None:
        self._post("shape", shape=shape)

    def revoke(self, username: str) -> None:
        self._post("revoke", username=username)

    def mint(self, username: str = "acme_bakery", age_hours: float = 48, **kw) -> dict:
        """A long-lived sandbox token issued ``age_hours`` ago."""
        return self._post("mint", username=username, age_hours=age_hours, **kw)

    def feed(self, username: str = "acme_bakery", count: int = 12) -> None:
        """The user's feed becomes ``count`` default posts."""
        self._post("feed", username=username, count=count)

    def add_post(self, username: str = "acme_bakery", **fields) -> dict:
        """A new newest post (media_type, caption, width, height, children); its ids."""
        return self._post("post", username=username, **fields)

    def delete_post(self, media_id: str, username: str = "acme_bakery") -> None:
        self._post("delete_post", username=username, id=media_id)

    def caption(self, media_id: str, caption: str | None, username: str = "acme_bakery") -> None:
        self._post("caption", username=username, id=media_id, caption=caption)

    def cdn_ttl(self, seconds: int) -> None:
        """Lifetime of the CDN URLs handed out from now on (<= 0: already expired)."""
        self._post("cdn", ttl_seconds=seconds)

    def journal(self) -> list[dict]:
        r = self.http.get(f"{self.base_url}/_control/requests", timeout=10)
        r.raise_for_status()
        return r.json()["requests"]

    def calls(self) -> dict[str, int]:
        r = self.http.get(f"{self.base_url}/_control/calls", timeout=10)
        r.raise_for_status()
        return r.json()

    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"


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


def start_sandbox_process(env: dict | None = None, shared_cache: bool = False):
    """Start ``manage.py sandbox_server --port 0``; returns (process, SandboxControl)."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    cmd = [sys.executable, str(ROOT / "manage.py"), "sandbox_server", "--port", "0"]
    if shared_cache:
        cmd.append("--shared-cache")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
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
def running_sandbox(env: dict | None = None, shared_cache: bool = False):
    """``start_sandbox_process`` for the duration of a ``with`` block; yields the
    SandboxControl and stops the server afterwards (SIGTERM, SIGKILL after 10 s)."""
    proc, control = start_sandbox_process(env=env, shared_cache=shared_cache)
    try:
        yield control
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def sandbox_process():
    with running_sandbox() as control:
        yield control
