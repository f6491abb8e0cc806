"""accounts/services/accounts.py: slugs, and the owner's actions on an account
(disconnect, rename, make default), which drop the served copies."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount
from accounts.services import accounts as account_services
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


# --- Slugs, disconnect, rename, default ----------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "slug"),
    [
        ("acme_bakery", "acme_bakery"),
        ("acme.bakery", "acme-bakery"),
        ("Acme.Bakery_", "acme-bakery"),
        ("...", "account"),
    ],
)
def test_slug_defaults_to_the_username(username, slug):
    assert account_services._slug_from_username(username) == slug


def test_disconnect_deletes_the_token_and_stops_refreshing():
    account = make_account(username="cafe")
    account_services.account_disconnect(account=account)
    account.refresh_from_db()
    assert account.status == InstagramAccount.Status.DISCONNECTED
    assert not AccessToken.objects.filter(account=account).exists()
    from accounts.selectors.refresh import accounts_due_for_refresh

    assert account not in accounts_due_for_refresh(now=timezone.now() + timedelta(days=30))


def test_rename_checks_format_and_uniqueness():
    a = make_account(username="cafe", slug="cafe")
    make_account(username="shop", slug="shop")
    for bad in ("", "has space", "ü", "x" * 65, "a/b"):
        with pytest.raises(account_services.SlugError):
            account_services.account_rename(account=a, slug=bad)
    with pytest.raises(account_services.SlugError):
        account_services.account_rename(account=a, slug="SHOP")  # taken, case-insensitively
    a.refresh_from_db()
    assert a.slug == "cafe"
    account_services.account_rename(account=a, slug="Cafe_Main-2")
    assert InstagramAccount.objects.get(pk=a.pk).slug == "Cafe_Main-2"


def test_set_default_keeps_a_single_default():
    a, b = make_account(username="a_a", is_default=True), make_account(username="b_b")
    account_services.account_set_default(account=b)
    assert list(InstagramAccount.objects.filter(is_default=True)) == [b]
    a.refresh_from_db()
    assert not a.is_default


# --- Served copies (the receivers in accounts/token_cache.py) ------------------------------------


def test_owner_actions_drop_the_served_copies(client, django_capture_on_commit_callbacks):
    acme = make_account(username="acme_shop", slug="acme", is_default=True)
    other = make_account(username="other_shop", slug="other")
    assert client.get("/token.json").json()["account"] == "acme"
    assert client.get("/token/other.json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_set_default(account=other)
    assert client.get("/token.json").json()["account"] == "other"
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_rename(account=other, slug="renamed")
    assert client.get("/token/other.json").status_code == 404
    assert client.get("/token/renamed.json").status_code == 200
    assert client.get("/token.json").json()["account"] == "renamed"
    assert client.get("/token/acme.json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_disconnect(account=acme)
    assert client.get("/token/acme.json").status_code == 503
