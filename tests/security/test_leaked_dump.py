"""A leaked database dump: after a real sign-in, a refresh and a pasted token, every
row of every table (and every session payload, decoded) holds no token, no app
secret, no webhook secret, no SECRET_KEY and no encryption key. The tokens are
Fernet ciphertext under a key that lives only in the environment."""

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import Client

from accounts import crypto
from accounts.models import AccessToken
from accounts.services.imports import account_import_token
from accounts.services.refresh import token_refresh
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import database_dump

pytestmark = pytest.mark.django_db

APP_SECRET = "app-secret-that-must-not-leak-0123"
WEBHOOK_SECRET = "webhook-secret-that-must-not-leak-4567"
PASTED = "IGAApastedTokenThatMustNotLeak000000001"


@pytest.fixture(autouse=True)
def agent(agent_settings):
    """The agent for real Instagram, with secrets of this test's own."""
    agent_settings.INSTAGRAM_APP_SECRET = APP_SECRET
    agent_settings.WEBHOOK_SECRET = WEBHOOK_SECRET
    agent_settings.TOKEN_ENCRYPTION_KEY = ""


def test_a_dump_after_sign_in_refresh_and_paste_holds_no_token_and_no_secret(settings):
    client = Client()
    login = client.get("/login/")
    state = parse_qs(urlsplit(login["Location"]).query)["state"][0]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as ig:
        fakes.register_login(ig, username="acme_bakery")
        fakes.register_refresh(ig)
        ig.add(responses.GET, fakes.ME_URL, json=fakes.me(user_id="2", username="shop_two"))
        signed_in = client.get(
            "/oauth/instagram/callback/", {"state": state, "code": "AQDxLeakCode"}
        )
        assert signed_in.status_code == 302
        account = AccessToken.objects.get().account
        account_import_token(access_token=PASTED, slug="shop-two")
        AccessToken.objects.filter(account=account).update(
            issued_at=AccessToken.objects.get(account=account).issued_at.replace(year=2000)
        )
        token_refresh(account=account, force=True)

    text = database_dump()  # what a thief of a backup (or of Heroku Postgres credentials) reads
    assert AccessToken.objects.count() == 2
    for secret in (
        fakes.SHORT_TOKEN,
        fakes.LONG_TOKEN,
        fakes.REFRESHED_TOKEN,
        PASTED,
        "AQDxLeakCode",
        APP_SECRET,
        WEBHOOK_SECRET,
        settings.SECRET_KEY,
    ):
        assert secret not in text, "a secret is readable in the database"
    # Nor the key that opens the tokens (derived from SECRET_KEY here).
    assert crypto._derived_key(settings.SECRET_KEY).decode() not in text
    # What is there is ciphertext the environment's key opens.
    values = {t.value for t in AccessToken.objects.all()}
    assert values <= {fakes.REFRESHED_TOKEN, fakes.LONG_TOKEN, PASTED}
    assert fakes.REFRESHED_TOKEN in values
