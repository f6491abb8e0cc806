"""Helpers of the feed's process tests (test_feed_worker.py, test_feed_two_dynos.py):
the sandbox Instagram in a process the test can stop, signing in to a running
agent through it over HTTP as a browser does, and reading the feed the worker
stored."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from harness.processes import terminate
from tests.sandbox_control import start_sandbox_process

OWNER = "acme_bakery"
# The sandbox's default feed (accounts/sandbox/README.md): 12 posts, 14 pictures
# (9 photos, 2 video thumbnails, 3 carousel items) in 39 renditions.
POSTS = 12
RENDITIONS = 39


class StoppableSandbox:
    """``manage.py sandbox_server`` on a free port (state in its memory) that a
    test can take down, as when Instagram is unreachable."""

    def __init__(self) -> None:
        self.proc, self.control = start_sandbox_process()

    @property
    def base_url(self) -> str:
        return self.control.base_url

    def stop(self) -> None:
        if self.proc.poll() is None:
            terminate(self.proc)


def owner_env(sandbox_url: str) -> dict[str, str]:
    """What an agent needs so that the sandbox's owner can sign in over plain HTTP."""
    return {
        "INSTAGRAM_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize",
        "OWNER_INSTAGRAM_USERNAMES": OWNER,
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
    }


def sign_in(origin: str, *, username: str = OWNER) -> requests.Session:
    """Sign in to the agent at ``origin`` through the sandbox's consent page, as a
    browser does: /login/, Allow as ``username``, the OAuth callback. Returns the
    signed-in session."""
    http = requests.Session()
    start = http.get(f"{origin}/login/", allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text
    authorize, _, query = start.headers["Location"].partition("?")
    fields = {name: values[0] for name, values in parse_qs(query).items()}
    back = http.post(
        authorize,
        data={**fields, "username": username, "decision": "allow"},
        allow_redirects=False,
        timeout=30,
    )
    assert back.status_code == 302, back.text
    callback = back.headers["Location"].split("#", 1)[0]
    assert urlsplit(callback).path == "/oauth/instagram/callback/", callback
    landed = http.get(callback, allow_redirects=False, timeout=30)
    assert landed.status_code == 302 and landed.headers["Location"] == "/", landed.text
    return http
