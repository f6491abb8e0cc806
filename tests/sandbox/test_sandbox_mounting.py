"""Where the sandbox Instagram is reachable: mounted in the agent's own URLconf
(tokenagent.urls) only with DEBUG on and no INSTAGRAM_APP_ID, never with DEBUG
off; and standalone (``manage.py sandbox_server``) under production settings,
with no database.

Settings are read at import, so each case runs in a fresh interpreter with a
controlled environment (nothing inherited from the test run, and no .env)."""

from pathlib import Path

import pytest
import requests

from tests.child_python import child_env, json_result, run_python
from tests.sandbox_control import oauth_over_http, running_sandbox

BASE_DIR = Path(__file__).resolve().parents[2]

# Run in the child: settings + URL resolution against tokenagent.urls.
PROBE = r"""
import json, sys
import environ
environ.Env.read_env = classmethod(lambda cls, *a, **kw: None)  # no .env
import django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve

def view(path):
    try:
        match = resolve(path, urlconf="tokenagent.urls")
    except Resolver404:
        return None
    return match.view_name

print(json.dumps({
    "SANDBOX_ENABLED": settings.SANDBOX_ENABLED,
    "DEBUG": settings.DEBUG,
    "INSTAGRAM_AUTHORIZE_URL": settings.INSTAGRAM_AUTHORIZE_URL,
    "INSTAGRAM_API_URL": settings.INSTAGRAM_API_URL,
    "INSTAGRAM_GRAPH_URL": settings.INSTAGRAM_GRAPH_URL,
    "views": {path: view(path) for path in sys.argv[1:]},
}))
"""
SANDBOX_PATHS = [
    "/sandbox/oauth/authorize",
    "/sandbox/oauth/access_token",
    "/sandbox/access_token",
    "/sandbox/refresh_access_token",
    "/sandbox/v21.0/me",
    "/sandbox/me/media",
    "/sandbox/_control/reset",
]
SANDBOX_VIEWS = {
    "/sandbox/oauth/authorize": "sandbox:authorize",
    "/sandbox/oauth/access_token": "sandbox:code-exchange",
    "/sandbox/access_token": "sandbox:long-lived",
    "/sandbox/refresh_access_token": "sandbox:refresh",
    "/sandbox/v21.0/me": "sandbox:me",
    "/sandbox/me/media": "sandbox:media",
    "/sandbox/_control/reset": "sandbox:control",
}
REAL_HOSTS = {
    "INSTAGRAM_AUTHORIZE_URL": "https://www.instagram.com/oauth/authorize",
    "INSTAGRAM_API_URL": "https://api.instagram.com",
    "INSTAGRAM_GRAPH_URL": "https://graph.instagram.com",
}
# No PostgreSQL listens here: anything that opened a connection would fail.
NO_DATABASE = "postgres://nobody:nothing@127.0.0.1:9/no_such_database"


def clean_env(tmp_path, **environment):
    return child_env(tmp_path / "var", **environment)


def probe(tmp_path, **environment):
    return json_result(run_python(PROBE, *SANDBOX_PATHS, env=clean_env(tmp_path, **environment)))


# --- mounted in the agent --------------------------------------------------------------------


@pytest.mark.parametrize("debug", ["0", "false", None])
def test_debug_off_mounts_no_sandbox_even_without_an_app_id(tmp_path, debug):
    environment = {"SECRET_KEY": "x"}
    if debug is not None:
        environment["DEBUG"] = debug

    out = probe(tmp_path, **environment)

    assert out["DEBUG"] is False
    assert out["SANDBOX_ENABLED"] is False
    assert out["views"] == dict.fromkeys(SANDBOX_PATHS)
    assert {k: out[k] for k in REAL_HOSTS} == REAL_HOSTS


def test_debug_on_without_an_app_id_mounts_the_sandbox_and_points_instagram_at_it(tmp_path):
    out = probe(tmp_path, DEBUG="1", PORT="8123")

    assert out["SANDBOX_ENABLED"] is True
    assert out["views"] == SANDBOX_VIEWS
    base = "http://127.0.0.1:8123/sandbox"
    assert out["INSTAGRAM_API_URL"] == base
    assert out["INSTAGRAM_GRAPH_URL"] == base
    # The browser goes to the authorize page on the agent's own origin, whatever host
    # it reached the agent by.
    assert out["INSTAGRAM_AUTHORIZE_URL"] == "/sandbox/oauth/authorize"
    assert "/sandbox/oauth/authorize" in out["views"]


def test_debug_on_with_an_app_id_mounts_no_sandbox(tmp_path):
    out = probe(tmp_path, DEBUG="1", INSTAGRAM_APP_ID="1234567890123456")

    assert out["SANDBOX_ENABLED"] is False
    assert out["views"] == dict.fromkeys(SANDBOX_PATHS)
    assert {k: out[k] for k in REAL_HOSTS} == REAL_HOSTS


def test_a_blank_app_id_counts_as_unset(tmp_path):
    out = probe(tmp_path, DEBUG="1", INSTAGRAM_APP_ID="")
    assert out["SANDBOX_ENABLED"] is True
    assert out["views"] == SANDBOX_VIEWS


# --- standalone --------------------------------------------------------------------------------


@pytest.fixture
def production_sandbox(tmp_path):
    """``sandbox_server`` with production settings: DEBUG off, a real SECRET_KEY,
    SECURE_SSL_REDIRECT at its default (on), no app id, and a DATABASE_URL that
    cannot be reached (nothing inherited from the test run, no .env)."""
    env = clean_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="a-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=NO_DATABASE,
    )
    with running_sandbox(env=env, inherit=False) as control:
        yield control.base_url


def test_standalone_server_answers_under_production_settings_without_a_database(
    production_sandbox,
):
    base = production_sandbox
    assert base.startswith("http://127.0.0.1:")
    authorize = {
        "client_id": "1234567890123456",
        "redirect_uri": "https://agent.example.com/oauth/instagram/callback/",
        "response_type": "code",
        "scope": "instagram_business_basic",
        "state": "st4te",
    }

    flow = oauth_over_http(base, authorize=authorize, username="acme_bakery", client_secret="s")

    # Plain HTTP, no redirect to https:// despite SECURE_SSL_REDIRECT's production default.
    assert flow.page.status_code == 200
    assert "SANDBOX Instagram" in flow.page.text
    assert flow.consent.status_code == 302
    assert flow.consent.headers["Location"].startswith(authorize["redirect_uri"] + "?")
    assert flow.exchanged.status_code == 200
    assert flow.exchanged.json()["access_token"] == flow.short  # observed (flat) shape by default
    http, profile, media = flow.http, flow.profile, flow.media
    assert profile.status_code == 200
    assert profile.json()["username"] == "acme_bakery"
    assert media.status_code == 200
    image = http.get(media.json()["data"][0]["media_url"], allow_redirects=False, timeout=10)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/jpeg"
    assert http.post(f"{base}/_control/reset", json={}, timeout=10).json() == {"ok": True}
    # Only the sandbox is served there: not the agent's pages.
    assert http.get(base.removesuffix("/sandbox") + "/", timeout=10).status_code == 404
    assert http.get(base.removesuffix("/sandbox") + "/token.json", timeout=10).status_code == 404


def test_standalone_server_refreshes_a_minted_token_under_production_settings(
    production_sandbox,
):
    http = requests.Session()
    minted = http.post(
        f"{production_sandbox}/_control/mint", json={"age_hours": 30}, timeout=10
    ).json()

    resp = http.get(
        f"{production_sandbox}/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": minted["access_token"]},
        timeout=10,
    )

    assert resp.status_code == 200
    assert resp.json()["expires_in"] == 5183944
    assert resp.json()["access_token"] != minted["access_token"]
