import pytest

from accounts.admin import InstagramAccountForm, OwnerIdentityForm
from accounts.models import InstagramAccount


def _form(account, allowed):
    data = {
        f.name: getattr(account, f.attname)
        for f in InstagramAccount._meta.fields
        if f.editable and f.name not in ("id", "refresh_locked_until")
    }
    data["allowed_domains"] = allowed
    data = {k: ("" if v is None else v) for k, v in data.items()}
    return InstagramAccountForm(data=data, instance=account)


def test_admin_refuses_an_allowed_domains_entry_that_matches_nothing(account):
    form = _form(account, "example.com https://shop.example.com/feed ftp://x.com")
    assert not form.is_valid()
    assert "allowed_domains" in form.errors


def test_admin_accepts_host_names_and_origins(account):
    form = _form(account, "example.com https://shop.example.com")
    assert form.is_valid(), form.errors


def test_admin_change_page_masks_the_token_and_saves_domains(admin_client, account):
    url = f"/admin/accounts/instagramaccount/{account.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"IGAAtestLongLivedToken0000000001" not in page.content
    assert "IGAA…0001" in page.content.decode()


@pytest.mark.django_db
def test_admin_pins_usernames_as_instagram_spells_them():
    when = "2025-03-14 09:26:53"
    good = OwnerIdentityForm(
        data={"username": " @Acme_Bakery", "ig_user_id": "1", "pinned_at": when}
    )
    assert good.is_valid(), good.errors
    assert good.cleaned_data["username"] == "acme_bakery"
    bad = OwnerIdentityForm(data={"username": "\u212aate", "ig_user_id": "1", "pinned_at": when})
    assert not bad.is_valid() and "username" in bad.errors
