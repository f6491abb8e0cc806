"""Instagram Login through Django's test client: /login/, every outcome of the
callback, the owner allow-list, connect-another, invites, logout, and that a
failure stores nothing."""

import logging
import threading
from datetime import timedelta

import pytest
import responses
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount, Invite, OAuthState
from accounts.services.invites import invite_create, invite_link_token
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import (
    CALLBACK,
    CODE,
    OWNER,
    callback,
    counts,
    database_dump,
    exchange_calls,
    start,
)
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]

NOTHING = {"accounts": 0, "tokens": 0, "users": 0, "invites_used": 0}


def _signed_in_as_owner(client) -> bool:
    response = client.get("/")
    return response.status_code == 200 and b"Your Instagram accounts" in response.content


# --- /login/ -------------------------------------------------------------------------------------


def test_login_redirects_to_instagram_with_a_fixed_redirect_uri_and_a_session_bound_state(client):
    query = start(client)
    assert query["_location"].startswith("https://www.instagram.com/oauth/authorize?")
    assert query["client_id"] == "1234567890123456"
    assert query["redirect_uri"] == "http://testserver/oauth/instagram/callback/"
    assert query["response_type"] == "code"
    assert "instagram_business_basic" in query["scope"].split(",")
    state = OAuthState.objects.get(state=query["state"])
    assert state.purpose == OAuthState.Purpose.SIGN_IN
    assert state.session_key == client.session.session_key
    assert state.used_at is None


def test_redirect_uri_is_https_behind_herokus_router(client, settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    response = client.get("/login/", HTTP_HOST="agent.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert (
        "redirect_uri=https%3A%2F%2Fagent.example.com%2Foauth%2Finstagram%2Fcallback%2F"
        in (response["Location"])
    )


def test_each_login_gets_a_new_state(client):
    assert start(client)["state"] != start(client)["state"]


def test_login_when_already_an_owner_goes_to_the_dashboard(owner_client):
    response = owner_client.get("/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_login_without_instagram_credentials_says_what_to_set(client, settings):
    settings.INSTAGRAM_APP_ID = ""
    response = client.get("/login/")
    assert response.status_code == 400
    assert b"INSTAGRAM_APP_ID" in response.content
    assert not OAuthState.objects.exists()


# --- Success -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["observed", "documented"])
def test_sign_in_stores_account_and_token_and_signs_the_owner_in(client, ig, shape):
    fakes.register_login(ig, shape=shape)
    query = start(client)
    response = callback(client, query["state"], code=CODE + "#_")
    assert response.status_code == 302 and response["Location"] == "/"

    account = InstagramAccount.objects.get()
    assert account.ig_user_id == fakes.USER_ID
    assert account.app_scoped_id == fakes.APP_SCOPED_ID
    assert account.username == OWNER and account.slug == OWNER
    assert account.status == InstagramAccount.Status.ACTIVE
    token = AccessToken.objects.get(account=account)
    assert token.value == fakes.LONG_TOKEN
    assert token.ciphertext != fakes.LONG_TOKEN
    assert timedelta(days=59) < token.expires_at - timezone.now() < timedelta(days=61)
    assert account.user is not None and account.user.is_active
    assert client.session["_auth_user_id"] == str(account.user.pk)
    assert _signed_in_as_owner(client)

    # The code went to Instagram without its '#_' and with the identical redirect_uri.
    body = exchange_calls(ig)[0].request.body
    assert f"code={CODE}&" in body + "&" and "%23_" not in body
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Foauth%2Finstagram%2Fcallback%2F" in body
    assert "grant_type=authorization_code" in body


def test_sign_in_goes_back_to_the_page_that_asked_for_it(client, ig):
    fakes.register_login(ig)
    state = start(client, "/login/?next=/setup/")["state"]
    assert callback(client, state)["Location"] == "/setup/"


def test_sign_in_ignores_an_off_site_next(client, ig):
    fakes.register_login(ig)
    state = start(client, "/login/?next=https://evil.example/")["state"]
    assert callback(client, state)["Location"] == "/"


def test_signing_in_twice_updates_one_account_and_one_user(client, ig):
    fakes.register_login(ig)
    callback(client, start(client)["state"])
    first = InstagramAccount.objects.get()
    client.post("/logout/")

    ig.replace(
        responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived(token="IGAASecondLong123")
    )
    ig.replace(
        responses.GET, fakes.ME_URL, json=fakes.me(username="Acme_Bakery")
    )  # handle re-cased: still the owner (case-insensitive)
    callback(client, start(client)["state"])

    account = InstagramAccount.objects.get()
    assert account.pk == first.pk and account.slug == first.slug
    assert account.username == "Acme_Bakery"
    assert AccessToken.objects.get().value == "IGAASecondLong123"
    assert AccessToken.objects.get().version == 2
    assert get_user_model().objects.count() == 1
    assert _signed_in_as_owner(client)


def test_a_staff_user_linked_to_the_account_may_sign_in_without_the_allow_list(
    client, ig, settings
):
    settings.OWNER_INSTAGRAM_USERNAMES = []
    staff = get_user_model().objects.create_user(username="boss", is_staff=True)
    make_account(username="agency_boss", ig_user_id=fakes.USER_ID, user=staff)
    fakes.register_login(ig, username="agency_boss")
    response = callback(client, start(client)["state"])
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_the_slug_is_deduplicated_when_another_account_has_the_username(client, ig):
    make_account(username="someone_else", slug=OWNER, ig_user_id="999")
    fakes.register_login(ig)
    callback(client, start(client)["state"])
    assert InstagramAccount.objects.get(ig_user_id=fakes.USER_ID).slug == f"{OWNER}-2"


def test_a_renamed_owner_stays_owner_and_their_old_name_admits_no_one_else(client, ig):
    """The first sign-in of a listed username pins its Instagram user id: that
    account stays the owner under a new handle, and whoever registers the old
    handle is refused with nothing stored."""
    fakes.register_login(ig)
    assert callback(client, start(client)["state"]).status_code == 302
    client.post("/logout/")
    before = counts()

    ig.replace(responses.GET, fakes.ME_URL, json=fakes.me(user_id="17841466666666666"))
    impostor = Client()
    response = callback(impostor, start(impostor)["state"])
    assert response.status_code == 403
    assert counts() == before
    assert not InstagramAccount.objects.filter(ig_user_id="17841466666666666").exists()
    assert "_auth_user_id" not in impostor.session

    ig.replace(responses.GET, fakes.ME_URL, json=fakes.me(username="acme_bakery_renamed"))
    assert callback(client, start(client)["state"]).status_code == 302
    assert InstagramAccount.objects.get().username == "acme_bakery_renamed"
    assert _signed_in_as_owner(client)


def test_a_username_that_only_case_folds_to_an_owner_is_refused(client, ig, settings):
    """U+212A KELVIN SIGN lower-cases to 'k' in Python; Instagram never spells a
    username with it, so it matches no listed owner."""
    settings.OWNER_INSTAGRAM_USERNAMES = ["kate_shop"]
    fakes.register_login(ig, username="\u212aate_shop", user_id="17841477777777777")
    response = callback(client, start(client)["state"])
    assert response.status_code == 403
    assert counts() == NOTHING


# --- Refusals and failures: a page, status < 500, nothing stored ---------------------------------


def _assert_failure_page(response, *, status=400, says: bytes):
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert says in response.content
    assert b"What to do" in response.content
    assert counts() == NOTHING


def test_a_non_owner_is_refused_and_nothing_of_theirs_is_stored(client, ig):
    fakes.register_login(ig, username="stranger_shop", user_id="17841499999999999")
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, status=403, says=b"cannot sign in here")
    assert b"OWNER_INSTAGRAM_USERNAMES" in response.content
    assert "_auth_user_id" not in client.session
    assert fakes.LONG_TOKEN not in database_dump()


def test_a_non_owner_does_not_get_an_existing_accounts_token_updated(client, ig):
    account = make_account(username="client_shop", ig_user_id="555")
    before = AccessToken.objects.get(account=account).ciphertext
    fakes.register_login(ig, username="client_shop", user_id="555")
    response = callback(client, start(client)["state"])
    assert response.status_code == 403
    assert AccessToken.objects.get(account=account).ciphertext == before
    assert InstagramAccount.objects.get(pk=account.pk).user is None


def test_a_deactivated_owner_is_refused(client, ig):
    user = get_user_model().objects.create_user(username="old", is_active=False)
    make_account(username=OWNER, ig_user_id=fakes.USER_ID, user=user)
    fakes.register_login(ig)
    response = callback(client, start(client)["state"])
    assert response.status_code == 403
    assert b"switched off" in response.content


def test_missing_state(client, ig):
    start(client)
    response = callback(client, None)
    _assert_failure_page(response, says=b"This link is incomplete")
    assert not ig.calls


def test_unknown_state(client, ig):
    start(client)
    response = callback(client, "forged-state-value")
    _assert_failure_page(response, says=b"was not started here")
    assert not ig.calls


def test_state_from_another_browser(client, ig):
    state = start(client)["state"]
    other = Client()
    start(other)
    response = callback(other, state)
    _assert_failure_page(response, says=b"started in another browser")
    assert not ig.calls


def test_replayed_callback_is_refused_and_the_code_is_not_exchanged_twice(client, ig):
    fakes.register_login(ig)
    state = start(client)["state"]
    assert callback(client, state).status_code == 302
    client.post("/logout/")
    response = callback(client, state)
    assert response.status_code == 400
    assert b"already used" in response.content
    assert len(exchange_calls(ig)) == 1


def test_expired_state(client, ig):
    state = start(client)["state"]
    OAuthState.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    response = callback(client, state)
    _assert_failure_page(response, says=b"took too long")
    assert not ig.calls


def test_user_denied_access(client, ig):
    state = start(client)["state"]
    response = callback(
        client,
        state,
        code=None,
        error="access_denied",
        error_reason="user_denied",
        error_description="The user denied your request",
    )
    _assert_failure_page(response, says=b"access was not granted")
    assert b"user_denied" in response.content
    assert not ig.calls
    # The state is used up: the same address cannot be replayed with a code.
    assert callback(client, state).status_code == 400


def test_other_instagram_errors_are_told_apart_from_denial_and_not_echoed(client, ig):
    state = start(client)["state"]
    response = callback(
        client,
        state,
        code=None,
        error="server_error",
        error_description="<script>alert(1)</script> call +1 555 0100",
    )
    _assert_failure_page(response, says=b"Instagram reported an error")
    assert b"server_error" in response.content
    assert b"555 0100" not in response.content and b"<script>alert" not in response.content


def test_callback_without_code_or_error(client, ig):
    response = callback(client, start(client)["state"], code=None)
    _assert_failure_page(response, says=b"no authorization code")
    assert not ig.calls


def test_code_exchange_refused(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_error(), status=400)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"Instagram refused the authorization")
    assert b"Matching code was not found" in response.content
    assert b"setup page" in response.content


def test_code_exchange_outage(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, body="upstream down", status=503)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"could not be reached")


def test_code_exchange_network_error(client, ig):
    ig.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        body=fakes.connection_error_for(fakes.CODE_EXCHANGE_URL),
    )
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"could not be reached")


def test_code_exchange_malformed_answer(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, body="<html>proxy</html>", status=200)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"answered unexpectedly")


def test_code_exchange_without_the_basic_permission(client, ig):
    ig.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json=fakes.code_exchange_observed(permissions=["instagram_business_manage_comments"]),
    )
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"A permission is missing")


def test_long_lived_exchange_failure(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_observed())
    ig.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.graph_error(2), status=500)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"could not be reached")


def test_long_lived_exchange_malformed(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_observed())
    ig.add(responses.GET, fakes.LONG_LIVED_URL, json={"token_type": "bearer"})
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"answered unexpectedly")


def test_me_refuses_the_token(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_observed())
    ig.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived())
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"did not accept the new token")
    assert fakes.LONG_TOKEN.encode() not in response.content


def test_me_rate_limited(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_observed())
    ig.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived())
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(4), status=400)
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"limiting requests")


def test_me_without_user_id(client, ig):
    ig.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_observed())
    ig.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived())
    ig.add(responses.GET, fakes.ME_URL, json={"username": "acme_bakery"})
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"answered unexpectedly")


def test_an_unusable_encryption_key_ends_on_a_page_and_stores_nothing(client, ig, settings):
    fakes.register_login(ig)
    settings.TOKEN_ENCRYPTION_KEY = "not-a-fernet-key"
    response = callback(client, start(client)["state"])
    _assert_failure_page(response, says=b"not set up correctly")
    assert "_auth_user_id" not in client.session


# --- Connect another account ---------------------------------------------------------------------


def test_owner_connects_another_account_without_being_signed_in_as_it(owner_client, ig):
    owner_user_id = owner_client.session["_auth_user_id"]
    query = start(owner_client, "/connect/", method="post")
    assert OAuthState.objects.get(state=query["state"]).purpose == OAuthState.Purpose.CONNECT
    fakes.register_login(ig, username="client_cafe", user_id="17841400000000777")
    response = callback(owner_client, query["state"])

    account = InstagramAccount.objects.get(ig_user_id="17841400000000777")
    assert response.status_code == 302 and response["Location"] == "/accounts/client_cafe/"
    assert account.user is None
    assert str(account.connected_by_id) == owner_user_id
    assert AccessToken.objects.get(account=account).value == fakes.LONG_TOKEN
    assert owner_client.session["_auth_user_id"] == owner_user_id


def test_reconnect_revives_a_disconnected_account(owner_client, ig):
    account = make_account(username="client_cafe", ig_user_id="777", token=None)
    InstagramAccount.objects.filter(pk=account.pk).update(
        status=InstagramAccount.Status.DISCONNECTED, last_error="deauthorized"
    )
    fakes.register_login(ig, username="client_cafe", user_id="777")
    callback(owner_client, start(owner_client, "/connect/", method="post")["state"])
    account.refresh_from_db()
    assert account.status == InstagramAccount.Status.ACTIVE and account.last_error == ""
    assert AccessToken.objects.get(account=account).value == fakes.LONG_TOKEN


def test_connect_needs_an_owner(client, django_user_model):
    response = client.post("/connect/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(django_user_model.objects.create_user(username="visitor"))
    assert client.post("/connect/").status_code == 403
    assert not OAuthState.objects.exists()


def test_connect_callback_after_signing_out_stores_nothing(owner_client, ig):
    before = counts()
    state = start(owner_client, "/connect/", method="post")["state"]
    owner_client.post("/logout/")
    # A fresh session: the state is bound to the old one.
    response = callback(owner_client, state)
    assert response.status_code == 400
    assert counts() == before
    assert not ig.calls


def test_connect_callback_when_no_longer_an_owner_stores_nothing(owner_client, ig, settings):
    before = counts()
    state = start(owner_client, "/connect/", method="post")["state"]
    settings.OWNER_INSTAGRAM_USERNAMES = []
    response = callback(owner_client, state)
    assert response.status_code == 400
    assert b"no longer signed in" in response.content
    assert counts() == before
    assert not ig.calls


# --- Invites -------------------------------------------------------------------------------------


@pytest.fixture
def invite(db, django_user_model):
    owner = django_user_model.objects.create_user(username="agency")
    return invite_create(created_by=owner, note="Cafe", days=3)


def _invite_path(invite: Invite) -> str:
    return f"/invite/{invite_link_token(invite=invite)}/"


def test_invite_lets_a_client_connect_without_access_to_the_agent(client, ig, invite):
    landing = client.get(_invite_path(invite))
    assert landing.status_code == 200 and b"Continue to Instagram" in landing.content
    query = start(client, _invite_path(invite), method="post")
    assert OAuthState.objects.get(state=query["state"]).invite_id == invite.pk
    fakes.register_login(ig, username="client_cafe", user_id="17841400000000888")
    response = callback(client, query["state"])
    assert response.status_code == 302 and response["Location"] == "/invite/thanks/"

    thanks = client.get("/invite/thanks/")
    assert thanks.status_code == 200 and b"@client_cafe" in thanks.content
    account = InstagramAccount.objects.get(ig_user_id="17841400000000888")
    assert account.user is None
    assert account.connected_by == invite.created_by
    invite.refresh_from_db()
    assert invite.used_at is not None and invite.account == account
    # The client is not signed in and sees nothing of the agent.
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 200 and not _signed_in_as_owner(client)
    assert client.get(f"/accounts/{account.slug}/").status_code == 302


def test_a_used_invite_link_is_refused(client, ig, invite):
    Invite.objects.filter(pk=invite.pk).update(used_at=timezone.now())
    response = client.get(_invite_path(invite))
    assert response.status_code == 400 and b"already used" in response.content
    assert client.post(_invite_path(invite)).status_code == 400
    assert not OAuthState.objects.exists()


def test_an_expired_invite_link_is_refused(client, invite):
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(_invite_path(invite))
    assert response.status_code == 400 and b"has expired" in response.content


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: ("Y" if t[0] == "X" else "X") + t[1:],  # key changed
        lambda t: t.split(":")[0],  # signature removed
        lambda t: "garbage",
    ],
)
def test_a_tampered_invite_link_is_refused(client, invite, tamper):
    token = invite_link_token(invite=invite)
    response = client.get(f"/invite/{tamper(token)}/")
    assert response.status_code == 400 and b"not valid" in response.content
    assert client.post(f"/invite/{tamper(token)}/").status_code == 400
    assert not OAuthState.objects.exists()


def test_a_withdrawn_invite_link_is_refused(client, invite):
    path = _invite_path(invite)
    invite.delete()
    response = client.get(path)
    assert response.status_code == 400 and b"withdrawn" in response.content


def test_an_invite_is_used_once_even_by_two_clients(ig, invite):
    first, second = Client(), Client()
    state_1 = start(first, _invite_path(invite), method="post")["state"]
    state_2 = start(second, _invite_path(invite), method="post")["state"]
    fakes.register_login(ig, username="client_cafe", user_id="888")
    assert callback(first, state_1)["Location"] == "/invite/thanks/"
    before = counts()
    response = callback(second, state_2)
    assert response.status_code == 400 and b"already used" in response.content
    assert counts() == before


def test_an_invite_used_while_the_client_was_on_instagram_stores_nothing(ig, invite):
    """The last check is inside the storing transaction: it rolls the account back."""
    client = Client()
    state = start(client, _invite_path(invite), method="post")["state"]
    fakes.register_login(ig, username="client_cafe", user_id="888")
    from accounts.services import oauth_callback

    real = oauth_callback.token_obtain_from_code

    def exchange_then_someone_else_uses_it(**kw):
        result = real(**kw)
        Invite.objects.filter(pk=invite.pk).update(used_at=timezone.now())
        return result

    oauth_callback.token_obtain_from_code = exchange_then_someone_else_uses_it
    try:
        response = callback(client, state)
    finally:
        oauth_callback.token_obtain_from_code = real
    assert response.status_code == 400 and b"already used" in response.content
    assert not InstagramAccount.objects.exists() and not AccessToken.objects.exists()


def test_an_invite_cannot_be_used_to_sign_in(client, ig, invite, settings):
    """Even an owner's own account connected through an invite is not signed in."""
    fakes.register_login(ig)
    state = start(client, _invite_path(invite), method="post")["state"]
    callback(client, state)
    assert "_auth_user_id" not in client.session
    assert InstagramAccount.objects.get().user is None


# --- Logout --------------------------------------------------------------------------------------


def test_logout_is_a_post(owner_client):
    assert owner_client.get("/logout/").status_code == 405
    assert _signed_in_as_owner(owner_client)
    response = owner_client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not _signed_in_as_owner(owner_client)


# --- Secrets: database and log -------------------------------------------------------------------


def test_a_full_sign_in_leaves_no_plaintext_token_in_the_database(client, ig):
    fakes.register_login(ig)
    callback(client, start(client)["state"])
    client.get("/")
    dump = database_dump()
    assert InstagramAccount.objects.count() == 1 and AccessToken.objects.count() == 1
    for secret in (fakes.LONG_TOKEN, fakes.SHORT_TOKEN, CODE, "test-app-secret"):
        assert secret not in dump


def test_a_full_sign_in_logs_no_token(client, ig, caplog):
    from tokenagent.redaction import RedactingFilter

    caplog.set_level(logging.DEBUG)
    for name in ("django.request", "django.server", "accounts", "django.security"):
        caplog.set_level(logging.DEBUG, logger=name)
    fakes.register_login(ig)
    callback(client, start(client)["state"], code=CODE + "#_")
    client.get("/")
    client.get("/accounts/acme_bakery/")
    # A failure too (another browser), with the code in the address.
    other = Client()
    callback(other, start(other)["state"], error="access_denied", code=CODE)

    assert caplog.records, "the flow logs what it does"
    raw = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (fakes.LONG_TOKEN, fakes.SHORT_TOKEN, "test-app-secret"):
        assert secret not in raw
    # What the log handler writes (through the redacting filter) has no code either.
    redacting = RedactingFilter()
    for record in caplog.records:
        redacting.filter(record)
    assert CODE not in "\n".join(r.getMessage() for r in caplog.records)


# --- Races ---------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tabs_racing_the_same_callback_store_one_account_and_one_token(ig):
    """Both requests carry the same session and state; exactly one goes on. (Real
    threads need a server database: SQLite's in-memory test database locks whole
    tables across threads. tests/accounts/test_oauth.py covers the claim itself.)"""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    fakes.register_login(ig)
    browser = Client()
    state = start(browser, "/login/")["state"]
    cookie = browser.cookies
    barrier = threading.Barrier(2)
    results = []

    def tab():
        c = Client()
        c.cookies = cookie
        barrier.wait()
        try:
            results.append(callback(c, state).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=tab) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [302, 400]
    assert InstagramAccount.objects.count() == 1
    assert AccessToken.objects.count() == 1
    assert len(exchange_calls(ig)) == 1


def test_callback_url_is_the_registered_one():
    from django.urls import reverse

    assert reverse("accounts:oauth-callback") == CALLBACK
