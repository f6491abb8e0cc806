"""Drive the sandbox Instagram from tests: its control API's client
(harness/sandbox_control.py) and two fixtures.

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

from harness.sandbox_control import SandboxControl

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
