"""The home page, the owner's pages (dashboard, account, actions, invites, paste a
token, setup) and their access rules."""

import re
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount, Invite, RefresherHeartbeat
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import database_dump, start
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]

FULL_TOKEN = "IGAAtestLongLivedToken0000000001"  # what make_account stores


def _html(response) -> str:
    return response.content.decode()


# --- Home ----------------------------------------------------------------------------------------


def test_home_for_a_visitor_shows_only_a_sign_in_button(client):
    make_account(username="cafe_shop")
    response = client.get("/")
    html = _html(response)
    assert response.status_code == 200
    assert 'href="/login/"' in html and "Sign in with Instagram" in html
    assert "cafe_shop" not in html and "/token/" not in html
    assert "<form" not in html


def test_home_shows_nothing_when_help_pages_are_hidden(client, settings):
    settings.HIDE_HELP_PAGES = True
    response = client.get("/")
    assert response.status_code == 404
    assert b"Sign in" not in response.content


def test_home_for_a_signed_in_non_owner(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="visitor"))
    response = client.get("/")
    assert response.status_code == 403
    assert b"not one of this agent's owners" in response.content


def test_sandbox_is_announced(client, settings):
    settings.SANDBOX_ENABLED = True
    assert b"Sandbox mode" in client.get("/").content


# --- Dashboard -----------------------------------------------------------------------------------


def test_dashboard_shows_each_account_with_masked_token_status_and_snippets(owner_client, settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    make_account(
        username="cafe_shop",
        slug="cafe",
        profile_picture_url="https://scontent.cdninstagram.com/v/cafe.jpg",
        last_error="Error validating access token: [redacted] (code 190)",
    )
    response = owner_client.get("/", HTTP_HOST="agent.example.com")
    html = _html(response)
    assert response.status_code == 200
    assert "@acme_bakery" in html and "@cafe_shop" in html
    assert 'src="https://scontent.cdninstagram.com/v/cafe.jpg"' in html
    assert '<code class="slug">cafe</code>' in html
    assert "IGAA…0001" in html  # masked
    assert FULL_TOKEN not in html
    assert "Active" in html  # status, from the refresh partial
    assert "Error validating access token" in html  # last error, redacted
    # Snippets carry the agent's real host.
    assert "http://agent.example.com/token/cafe.js" in html
    assert "http://agent.example.com/token/cafe.json" in html
    assert "fetch(" in html
    # Buttons.
    assert 'action="/accounts/cafe/disconnect/"' in html
    assert 'action="/connect/"' in html
    assert 'action="/accounts/cafe/refresh/"' in html
    assert "Connect another account" in html


def test_dashboard_warns_in_red_when_allowed_domains_is_unset(owner_client, settings):
    settings.ALLOWED_DOMAINS = ""
    html = _html(owner_client.get("/"))
    assert "cors-warning" in html and "ALLOWED_DOMAINS" in html
    settings.ALLOWED_DOMAINS = "example.com"
    assert "cors-warning" not in _html(owner_client.get("/"))


def test_dashboard_with_no_accounts(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="boss", is_staff=True))
    html = _html(client.get("/"))
    assert "No account is connected yet" in html


# --- Access rules --------------------------------------------------------------------------------


OWNER_PAGES = [
    ("get", "/accounts/acme/"),
    ("post", "/accounts/acme/disconnect/"),
    ("post", "/accounts/acme/rename/"),
    ("post", "/accounts/acme/default/"),
    ("post", "/accounts/acme/reveal/"),
    ("post", "/connect/"),
    ("get", "/invites/"),
    ("post", "/invites/"),
    ("get", "/import/"),
    ("post", "/import/"),
]


@pytest.mark.parametrize(("method", "path"), OWNER_PAGES)
def test_owner_pages_need_an_owner(client, django_user_model, method, path):
    make_account(username="acme_bakery", slug="acme")
    response = getattr(client, method)(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(django_user_model.objects.create_user(username="visitor"))
    assert getattr(client, method)(path).status_code == 403
    assert AccessToken.objects.count() == 1
    assert InstagramAccount.objects.get().status == InstagramAccount.Status.ACTIVE
    assert not Invite.objects.exists()


def test_a_removed_owner_loses_access_at_once(owner_client, settings):
    assert owner_client.get("/accounts/acme/").status_code == 200
    settings.OWNER_INSTAGRAM_USERNAMES = []
    assert owner_client.get("/accounts/acme/").status_code == 403


def test_a_linked_user_whose_handle_only_case_folds_to_an_owner_is_not_one(
    client, django_user_model, settings
):
    settings.OWNER_INSTAGRAM_USERNAMES = ["kate_shop"]
    user = django_user_model.objects.create_user(username="instagram-kelvin")
    make_account(username="\u212aate_shop", slug="kelvin", user=user)
    client.force_login(user)
    assert client.get("/accounts/kelvin/").status_code == 403


def test_owner_actions_are_post_only(owner_client):
    for path in ("/accounts/acme/disconnect/", "/accounts/acme/reveal/", "/connect/"):
        assert owner_client.get(path).status_code == 405
    assert AccessToken.objects.count() == 1


def test_owner_actions_need_csrf(owner_client):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.cookies = owner_client.cookies
    assert csrf_client.post("/accounts/acme/disconnect/").status_code == 403
    assert AccessToken.objects.count() == 1


# --- Account page and actions --------------------------------------------------------------------


def test_account_page(owner_client):
    response = owner_client.get("/accounts/acme/")
    html = _html(response)
    assert response.status_code == 200
    assert "@acme_bakery" in html and "IGAA…0001" in html and FULL_TOKEN not in html
    assert "Reveal the whole token" in html
    assert "/token/acme.js" in html
    assert 'action="/accounts/acme/rename/"' in html
    assert owner_client.get("/accounts/nobody/").status_code == 404


def test_disconnect_deletes_the_token(owner_client):
    response = owner_client.post("/accounts/acme/disconnect/")
    assert response.status_code == 302 and response["Location"] == "/"
    account = InstagramAccount.objects.get(slug="acme")
    assert account.status == InstagramAccount.Status.DISCONNECTED
    assert not AccessToken.objects.exists()
    html = _html(owner_client.get("/"))
    assert "Disconnected @acme_bakery" in html
    assert "Reconnect" in html
    assert owner_client.get("/token/acme.json").status_code != 200


def test_rename(owner_client):
    response = owner_client.post("/accounts/acme/rename/", {"slug": "bakery"})
    assert response.status_code == 302 and response["Location"] == "/accounts/bakery/"
    assert InstagramAccount.objects.get().slug == "bakery"
    assert owner_client.get("/token/bakery.json").status_code == 200
    assert owner_client.get("/token/acme.json").status_code == 404


@pytest.mark.parametrize(
    ("slug", "says"), [("", "required"), ("bad slug", "valid"), ("cafe", "already")]
)
def test_rename_refusals_change_nothing(owner_client, slug, says):
    make_account(username="cafe_shop", slug="cafe")
    response = owner_client.post("/accounts/acme/rename/", {"slug": slug})
    assert response.status_code == 400
    assert says in _html(response)
    assert InstagramAccount.objects.filter(slug="acme").exists()


def test_make_default(owner_client):
    make_account(username="cafe_shop", slug="cafe", is_default=True)
    response = owner_client.post("/accounts/acme/default/")
    assert response.status_code == 302
    assert list(
        InstagramAccount.objects.filter(is_default=True).values_list("slug", flat=True)
    ) == ["acme"]
    assert owner_client.get("/token.json").json()["account"] == "acme"


def test_reveal_shows_the_whole_token_only_on_post_and_is_not_cached(owner_client):
    response = owner_client.post("/accounts/acme/reveal/")
    assert response.status_code == 200
    assert FULL_TOKEN in _html(response)
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_reveal_of_an_undecryptable_token(owner_client):
    AccessToken.objects.update(ciphertext="gAAAAAnot-a-real-fernet-token")
    response = owner_client.post("/accounts/acme/reveal/")
    assert response.status_code == 400
    assert "cannot be decrypted" in _html(response)


def test_connect_button_starts_the_connect_flow(owner_client):
    query = start(owner_client, "/connect/", method="post")
    assert query["_location"].startswith("https://www.instagram.com/oauth/authorize?")


# --- Invites -------------------------------------------------------------------------------------


def test_invites_page_creates_lists_and_withdraws_links(owner_client):
    response = owner_client.post("/invites/", {"note": "Cafe owner", "days": 3})
    assert response.status_code == 302
    invite = Invite.objects.get()
    assert invite.note == "Cafe owner"
    assert timedelta(days=3) - (invite.expires_at - timezone.now()) < timedelta(minutes=1)
    html = _html(owner_client.get("/invites/"))
    found = re.search(r'class="invite-link">([^<]+)<', html)
    assert found, html
    link = found.group(1)
    assert link.startswith("http://testserver/invite/") and invite.key in link
    path = link.removeprefix("http://testserver")
    from django.test import Client

    assert Client().get(path).status_code == 200
    owner_client.post(f"/invites/{invite.pk}/revoke/")
    assert not Invite.objects.exists()
    assert Client().get(path).status_code == 400


@pytest.mark.parametrize("days", ["0", "31", "x", ""])
def test_invite_with_bad_lifetime_is_refused(owner_client, days):
    response = owner_client.post("/invites/", {"days": days})
    assert response.status_code == 400
    assert not Invite.objects.exists()


def test_invite_thanks_page_without_a_connection():
    from django.test import Client

    response = Client().get("/invite/thanks/")
    assert response.status_code == 200 and b"Thank you" in response.content


# --- Paste a token -------------------------------------------------------------------------------


def test_paste_a_token_validates_then_stores(owner_client, ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me(user_id="42", username="cafe_shop"))
    fakes.register_refresh(ig)
    response = owner_client.post(
        "/import/", {"token": "IGAApastedToken123456", "slug": "cafe", "make_default": "on"}
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/cafe/"
    account = InstagramAccount.objects.get(slug="cafe")
    assert account.is_default and account.username == "cafe_shop"
    assert AccessToken.objects.get(account=account).value == fakes.REFRESHED_TOKEN


def test_paste_an_invalid_token_stores_nothing_and_does_not_echo_it(owner_client, ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    before = database_dump()
    response = owner_client.post("/import/", {"token": "IGAAdeadToken1234567", "slug": "cafe"})
    html = _html(response)
    assert response.status_code == 400
    assert "does not accept this token" in html
    assert "IGAAdeadToken1234567" not in html
    assert database_dump() == before


def test_paste_with_a_taken_name(owner_client, ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me(user_id="42", username="cafe_shop"))
    response = owner_client.post("/import/", {"token": "IGAApastedToken123456", "slug": "acme"})
    assert response.status_code == 400
    assert "already the name of @acme_bakery" in _html(response)
    assert InstagramAccount.objects.count() == 1


def test_paste_form_requires_a_token(owner_client, ig):
    response = owner_client.post("/import/", {"token": ""})
    assert response.status_code == 400
    assert not ig.calls


# --- Setup ---------------------------------------------------------------------------------------


def _check(html: str, key: str) -> str:
    match = re.search(rf'<tr class="check-(\w+)" data-check="{key}">', html)
    assert match, key
    return match.group(1)


def test_setup_page_lists_the_exact_urls_for_metas_dashboard(client, settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    response = client.get("/setup/", HTTP_HOST="agent.example.com", HTTP_X_FORWARDED_PROTO="https")
    html = _html(response)
    assert response.status_code == 200
    assert (
        '<code id="redirect-uri">https://agent.example.com/oauth/instagram/callback/</code>' in html
    )
    assert (
        '<code id="deauthorize-url">https://agent.example.com/instagram/deauthorize/</code>' in html
    )
    assert (
        '<code id="data-deletion-url">https://agent.example.com/instagram/data-deletion/</code>'
        in html
    )
    # The same string the sign-in sends to Instagram.
    login = client.get("/login/", HTTP_HOST="agent.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert "https%3A%2F%2Fagent.example.com%2Foauth%2Finstagram%2Fcallback%2F" in login["Location"]
    assert "Instagram Tester" in html and "developers.facebook.com" in html


def test_setup_checklist_is_computed_live(client, settings):
    settings.ALLOWED_DOMAINS = ""
    settings.WEBHOOK_SECRET = ""
    settings.TOKEN_ENCRYPTION_KEY = ""
    settings.ALERT_EMAIL = []
    settings.ALERT_WEBHOOK_URL = ""
    html = _html(client.get("/setup/"))
    assert _check(html, "instagram_app") == "ok"
    assert _check(html, "owners") == "ok"
    assert _check(html, "allowed_domains") == "error"
    assert _check(html, "heartbeat") == "error"  # never ran
    assert _check(html, "token_encryption_key") == "warning"
    assert _check(html, "alerts") == "warning"
    assert _check(html, "webhook_secret") == "info"
    assert "cors-warning" in html
    assert 'data-check="sandbox"' not in html

    from cryptography.fernet import Fernet

    settings.ALLOWED_DOMAINS = "example.com"
    settings.WEBHOOK_SECRET = "s3cret-webhook"
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.ALERT_WEBHOOK_URL = "https://hooks.example.com/x"
    RefresherHeartbeat.objects.create(ran_at=timezone.now())
    html = _html(client.get("/setup/"))
    for key in (
        "allowed_domains",
        "heartbeat",
        "token_encryption_key",
        "alerts",
        "webhook_secret",
    ):
        assert _check(html, key) == "ok", key
    assert "cors-warning" not in html
    # Never a secret on the page.
    assert "s3cret-webhook" not in html and settings.TOKEN_ENCRYPTION_KEY not in html


def test_setup_warns_about_the_sandbox_a_stale_heartbeat_and_missing_credentials(client, settings):
    settings.SANDBOX_ENABLED = True
    RefresherHeartbeat.objects.create(ran_at=timezone.now() - timedelta(hours=3))
    html = _html(client.get("/setup/"))
    assert _check(html, "sandbox") == "warning"
    assert _check(html, "instagram_app") == "warning"
    assert _check(html, "heartbeat") == "error" and "Last ran 3" in html
    warnings = html[html.index("Needs attention") : html.index("<h2>Checklist")]
    assert "Sandbox" in warnings and "Refresher" in warnings

    settings.SANDBOX_ENABLED = False
    settings.INSTAGRAM_APP_SECRET = ""
    settings.OWNER_INSTAGRAM_USERNAMES = []
    html = _html(client.get("/setup/"))
    assert _check(html, "instagram_app") == "error" and "INSTAGRAM_APP_SECRET" in html
    assert _check(html, "owners") == "error"


def test_setup_page_is_hidden_from_visitors_with_hide_help_pages(client, owner_client, settings):
    settings.HIDE_HELP_PAGES = True
    from django.test import Client

    assert Client().get("/setup/").status_code == 404
    response = owner_client.get("/setup/")
    assert response.status_code == 200
    assert "<code>acme_bakery</code>" in _html(response)  # owners see who may sign in


def test_setup_page_does_not_name_the_owners_to_visitors(client):
    assert "acme_bakery" not in _html(client.get("/setup/"))


# --- Admin ----------------------------------------------------------------------------------------


def test_the_admin_shows_the_token_masked(client, django_user_model):
    account = make_account(username="cafe_shop", slug="cafe")
    client.force_login(django_user_model.objects.create_superuser(username="root", password="x"))
    html = _html(client.get(f"/admin/accounts/instagramaccount/{account.pk}/change/"))
    assert "IGAA…0001" in html
    assert FULL_TOKEN not in html
    assert AccessToken.objects.get().ciphertext not in html
