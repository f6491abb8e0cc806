"""Sign-in in a real browser: headless Chromium (Debian's) clicks from the home page
through the sandbox Instagram's consent page, lands on the dashboard with the
connected account and its snippet, then connects a second account. Afterwards no
token is in the database in clear, and none was logged."""

import logging
import re

import pytest

from accounts.models import AccessToken, InstagramAccount
from tests.accounts.connect_support import database_dump
from tokenagent.redaction import RedactingFilter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 15_000


@pytest.fixture
def agent(sandbox_live, settings):
    settings.OWNER_INSTAGRAM_USERNAMES = ["acme_bakery"]
    settings.SANDBOX_ENABLED = False
    settings.HIDE_HELP_PAGES = False
    # The live server speaks plain http.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "browser-signin",
        }
    }
    return sandbox_live


def _consent(page, username: str) -> None:
    """The sandbox's authorize page: a test username and Allow."""
    page.wait_for_selector("#username", timeout=TIMEOUT_MS)
    page.fill("#username", username)
    page.click("button.allow")


def test_sign_in_through_the_sandbox_then_connect_a_second_account(
    live_server, agent, page, caplog
):
    caplog.set_level(logging.DEBUG)
    for name in ("django", "django.request", "django.server", "accounts"):
        caplog.set_level(logging.DEBUG, logger=name)
    # django.server does not propagate to the root logger (settings.LOGGING).
    logging.getLogger("django.server").addHandler(caplog.handler)
    page.set_default_timeout(TIMEOUT_MS)
    try:
        # Home page: only a sign-in button.
        page.goto(f"{live_server.url}/")
        page.click("text=Sign in with Instagram")
        assert "/sandbox/oauth/authorize" in page.url
        _consent(page, "acme_bakery")

        # The dashboard, with the account and its ready-to-paste snippet.
        page.wait_for_selector("text=Your Instagram accounts")
        # (Instagram's '#_' rides along the redirects: browsers keep a fragment.)
        assert page.url.split("#")[0] == f"{live_server.url}/"
        acme = page.locator("#account-acme_bakery")
        assert "@acme_bakery" in acme.inner_text()
        snippet = acme.locator(".snippets").inner_text()
        assert f'<script src="{live_server.url}/token/acme_bakery.js"></script>' in snippet
        assert f"{live_server.url}/token/acme_bakery.json" in snippet
        assert "Instafeed" in snippet
        assert "IGAA…" in acme.locator(".masked-token").inner_text()

        # A second account, through "Connect another account".
        page.click("#connect-another")
        _consent(page, "client_cafe")
        page.wait_for_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/client_cafe/(#_)?$"))
        assert "Connected @client_cafe" in page.content()
        page.goto(f"{live_server.url}/")
        assert page.locator("#account-client_cafe").count() == 1
        assert page.locator("#account-acme_bakery").count() == 1
        # Still signed in as the owner, not as the second account.
        assert "Sign out @acme_bakery" in page.locator("header").inner_text()
    finally:
        logging.getLogger("django.server").removeHandler(caplog.handler)

    accounts = {a.username: a for a in InstagramAccount.objects.select_related("user")}
    assert set(accounts) == {"acme_bakery", "client_cafe"}
    assert accounts["acme_bakery"].user is not None
    assert accounts["client_cafe"].user is None
    tokens = [t.value for t in AccessToken.objects.all()]
    assert len(tokens) == 2 and all(t.startswith("IGAA") for t in tokens)

    # Inspecting the database shows no token in clear.
    dump = database_dump()
    for token in tokens:
        assert token not in dump

    # The server log of the whole flow shows no token (and, once through the
    # redacting filter every handler has, no OAuth code either).
    assert caplog.records
    raw = "\n".join(r.getMessage() for r in caplog.records)
    for token in tokens:
        assert token not in raw
    redacting = RedactingFilter()
    for record in caplog.records:
        redacting.filter(record)
    assert not re.search(
        r"code=(?!\[redacted\])[A-Za-z0-9]", "\n".join(r.getMessage() for r in caplog.records)
    )


def test_denying_on_instagram_ends_on_a_clear_page(live_server, agent, page):
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{live_server.url}/login/")
    page.wait_for_selector("button.deny")
    page.click("button.deny")
    page.wait_for_selector("text=Instagram access was not granted")
    assert "/oauth/instagram/callback/" in page.url
    assert not InstagramAccount.objects.exists()
    page.get_by_role("link", name="Start again").click()
    page.wait_for_selector("#username")
