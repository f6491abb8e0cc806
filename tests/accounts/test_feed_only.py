"""Feed-only accounts (PRODUCT.md: "its token URLs then answer 404 as if it did not
exist, and its token never leaves the agent"), the owner's switch for it on the
account page and in the admin, and the slugs the feed URLs reserve."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts import instagram
from accounts.admin import InstagramAccountForm
from accounts.models import InstagramAccount
from accounts.services import accounts as account_services
from accounts.services.feed import account_feed_only_set
from tests.factories import make_account
from tests.security import hostile

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
TOKEN = "IGAAfeedOnlyToken000000000000001"
SLUG_URLS = ["/token/{}.json", "/token/{}", "/token/{}.txt", "/token/{}.js"]
DEFAULT_URLS = ["/token.json", "/token", "/token.js"]


def answer(client: Client, url: str, **headers) -> tuple[int, dict, str]:
    response = client.get(url, **headers)
    kept = {k: v for k, v in response.items() if k not in ("Content-Length",)}
    return response.status_code, kept, response.content.decode()


@pytest.fixture
def feed_only(db):
    return make_account(slug="acme", username="acme_bakery", token=TOKEN, feed_only=True)


def test_its_token_urls_answer_exactly_as_for_an_unknown_account(client, feed_only, settings):
    for restricted in ("", "shop.example"):
        settings.ALLOWED_DOMAINS = restricted
        for pattern in SLUG_URLS:
            for headers in ({}, {"HTTP_ORIGIN": "https://shop.example"}):
                status, head, body = answer(client, pattern.format("acme"), **headers)
                unknown = answer(client, pattern.format("zzzz"), **headers)
                # 404; a .js asked by no listed page is refused first (403), as for any name.
                assert status in (403, 404)
                assert (status, head, body.replace("acme", "zzzz")) == unknown
                assert TOKEN not in body


def test_a_feed_only_default_answers_as_if_no_account_were_connected(
    client, django_capture_on_commit_callbacks
):
    nothing = {url: answer(client, url) for url in DEFAULT_URLS}
    with django_capture_on_commit_callbacks(execute=True):
        make_account(slug="acme", token=TOKEN, feed_only=True, is_default=True)
    for url in DEFAULT_URLS:
        status, head, body = answer(client, url)
        assert status == 404
        assert (status, head, body) == nothing[url]
        assert TOKEN not in body


def test_hostile_spellings_of_its_urls_never_serve_the_token(client, feed_only):
    spellings = [
        "/token/acme.json",
        "/token/%61cme.json",  # percent-encoded "a": the same account
        "/token/acme%2Ejson",
        "/token/acme.json/",
        "/token//acme.json",
        "/token/ACME.json",
        "/token/acme.JSON",
        "/token/acme;.json",
        "/token/acme.json?const=InstagramToken&slug=acme",
        "/token/acme.js?const=x",
        "/token/acme.js%00",
        "/token/acme/../acme.json",
        "/token.json?account=acme",
        "/token?slug=acme",
    ]
    for url in spellings:
        response = client.get(url, HTTP_REFERER="https://shop.example/")
        assert response.status_code in (400, 404), url
        hostile.assert_no_server_error(response)
        assert TOKEN not in response.content.decode(errors="replace"), url
        assert TOKEN not in str(dict(response.items())), url


def test_its_feed_urls_are_served(client, feed_only):
    # No snapshot yet: the feed URLs know the account (503, not 404) and its adapter is served.
    assert client.get("/feed/acme.json").status_code == 503
    assert client.get("/feed/acme.js").status_code == 200


def test_the_switch_drops_the_served_token_at_once(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        account = make_account(slug="acme", token=TOKEN, is_default=True)
    assert client.get("/token/acme.json").json()["token"] == TOKEN
    assert client.get("/token").content == TOKEN.encode()
    with django_capture_on_commit_callbacks(execute=True):
        account_feed_only_set(account=account, feed_only=True)
    assert client.get("/token/acme.json").status_code == 404
    assert client.get("/token").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        account_feed_only_set(account=account, feed_only=False)
    assert client.get("/token/acme.json").json()["token"] == TOKEN


# --- The owner's pages ----------------------------------------------------------------------------


def test_the_account_page_shows_the_feed_first_and_hides_the_token_when_feed_only(
    staff_client,
    settings,
):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    account = make_account(slug="acme", username="acme_bakery", token=TOKEN)
    page = staff_client.get("/accounts/acme/", HTTP_HOST="agent.example.com").content.decode()
    embed = "&lt;script src=&quot;http://agent.example.com/feed/embed.js&quot; async&gt;"
    adapter = "&lt;script src=&quot;http://agent.example.com/feed/acme.js&quot;&gt;"
    token = "&lt;script src=&quot;http://agent.example.com/token/acme.js&quot;&gt;"
    page = page.replace('"', "&quot;")
    assert embed in page and adapter in page and token in page
    assert page.index(embed) < page.index(adapter) < page.index(token)
    assert "Reveal the whole token" in page
    assert TOKEN not in page

    account_feed_only_set(account=account, feed_only=True)
    page = staff_client.get("/accounts/acme/", HTTP_HOST="agent.example.com").content.decode()
    page = page.replace('"', "&quot;")
    assert embed in page and adapter in page
    assert token not in page
    assert "/token/acme.json" not in page and "/token/acme.txt" not in page
    assert "Reveal the whole token" not in page
    assert "feed only" in page
    assert TOKEN not in page


def test_the_owner_switches_feed_only_with_a_post(staff_client):
    make_account(slug="acme", token=TOKEN)
    response = staff_client.post("/accounts/acme/feed-only/", {"feed_only": "on"})
    assert response.status_code == 302 and response["Location"] == "/accounts/acme/"
    assert InstagramAccount.objects.get(slug="acme").feed_only is True
    assert "is feed only" in staff_client.get("/accounts/acme/").content.decode()
    assert staff_client.post("/accounts/acme/feed-only/", {}).status_code == 302
    assert InstagramAccount.objects.get(slug="acme").feed_only is False
    assert staff_client.post("/accounts/nobody/feed-only/", {"feed_only": "on"}).status_code == 404


def test_the_switch_needs_an_owner_a_post_and_csrf(staff_client, django_user_model):
    make_account(slug="acme", token=TOKEN)
    url = "/accounts/acme/feed-only/"
    anonymous = Client().post(url, {"feed_only": "on"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    visitor = Client()
    visitor.force_login(django_user_model.objects.create_user(username="visitor"))
    assert visitor.post(url, {"feed_only": "on"}).status_code == 403
    assert staff_client.get(url).status_code == 405
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = staff_client.cookies
    assert forged.post(url, {"feed_only": "on"}).status_code == 403
    assert InstagramAccount.objects.get(slug="acme").feed_only is False


def test_reveal_refuses_a_feed_only_token(staff_client, feed_only):
    response = staff_client.post("/accounts/acme/reveal/")
    assert response.status_code == 400
    assert "feed only" in response.content.decode()
    assert TOKEN not in response.content.decode()


def test_the_preview_of_a_feed_only_account_loads_no_token(staff_client, feed_only):
    page = staff_client.get("/accounts/acme/preview/").content.decode()
    assert '<script src="/token/acme.js">' not in page
    assert '<script src="/feed/acme.js?const=TokenagentPreviewFeed"></script>' in page
    assert 'data-tokenagent-feed="acme"' in page
    assert TOKEN not in page


def _admin_data(account, **changes) -> dict:
    data = {
        f.name: getattr(account, f.attname)
        for f in InstagramAccount._meta.fields
        if f.editable and f.name not in ("id", "refresh_locked_until")
    }
    data.update(changes)
    return {k: ("" if v is None else v) for k, v in data.items() if v is not False}


def test_the_admin_edits_feed_only(admin_client, feed_only):
    url = f"/admin/accounts/instagramaccount/{feed_only.pk}/change/"
    assert 'name="feed_only"' in admin_client.get(url).content.decode()
    form = InstagramAccountForm(data=_admin_data(feed_only, feed_only=False), instance=feed_only)
    assert form.is_valid(), form.errors
    form.save()
    assert InstagramAccount.objects.get(pk=feed_only.pk).feed_only is False


# --- Reserved slugs -------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["embed", "EMBED", "img", "Img"])
def test_the_feed_urls_names_are_reserved(slug):
    with pytest.raises(account_services.SlugError, match="reserved"):
        account_services.slug_validate(slug=slug)
    account = make_account(slug="acme")
    with pytest.raises(account_services.SlugError, match="reserved"):
        account_services.account_rename(account=account, slug=slug)
    assert InstagramAccount.objects.get(pk=account.pk).slug == "acme"


def test_the_admin_refuses_a_reserved_slug(db):
    account = make_account(slug="acme")
    form = InstagramAccountForm(data=_admin_data(account, slug="embed"), instance=account)
    assert not form.is_valid()
    assert "reserved" in str(form.errors["slug"])


def test_an_instagram_user_called_embed_is_served_under_another_name():
    profile = instagram.Profile(user_id="17841400000099999", id="99", username="embed")
    now = timezone.now()
    token = account_services.ProbedToken(
        access_token=TOKEN,
        issued_at=now,
        expires_at=now + timedelta(days=60),
        refreshed=False,
        note="test",
    )
    with transaction.atomic():
        account, created = account_services.account_upsert(profile=profile, token=token)
    assert created and account.slug == "embed-2"
