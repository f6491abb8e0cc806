"""accounts/permissions.py: the one owner rule, for sign-in and for every request
(the allow-list as Instagram spells usernames, staff, usernames pinned to an
Instagram user id)."""

import pytest
from django.contrib.auth import get_user_model

from accounts import permissions
from accounts.models import OwnerIdentity
from tests.accounts.connect_support import OWNER
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


@pytest.mark.parametrize("listed", ["acme_bakery", "ACME_BAKERY", "@Acme_Bakery"])
def test_the_allow_list_is_case_insensitive(settings, listed):
    settings.OWNER_INSTAGRAM_USERNAMES = [listed.lstrip("@").lower()]
    assert permissions.owner_may_sign_in(ig_user_id="1", username="Acme_Bakery", account=None)
    assert permissions.owner_may_sign_in(ig_user_id="1", username="@acme_bakery", account=None)


def test_staff_may_sign_in_only_when_active(settings):
    settings.OWNER_INSTAGRAM_USERNAMES = []
    staff = get_user_model().objects.create_user(username="staff", is_staff=True)
    account = make_account(username="boss", user=staff)
    ig_user_id = account.ig_user_id
    assert permissions.owner_may_sign_in(ig_user_id=ig_user_id, username="boss", account=account)
    staff.is_active = False
    staff.save()
    account.refresh_from_db()
    assert not permissions.owner_may_sign_in(
        ig_user_id=ig_user_id, username="boss", account=account
    )
    assert not permissions.owner_may_sign_in(ig_user_id=ig_user_id, username="boss", account=None)


# --- Pinned usernames (docs/SECURITY.md row 16) -------------------------------------------------


def _pin(username: str, ig_user_id: str) -> OwnerIdentity:
    return OwnerIdentity.objects.create(username=username, ig_user_id=ig_user_id)


def test_a_listed_username_nobody_pinned_yet_is_an_owner():
    assert permissions.owner_listed(ig_user_id="1", username="Acme_Bakery")
    assert not permissions.owner_listed(ig_user_id="1", username="someone_else")


def test_a_pinned_username_admits_only_the_instagram_account_it_is_pinned_to():
    _pin(OWNER, "1")
    assert permissions.owner_listed(ig_user_id="1", username=OWNER)
    assert not permissions.owner_listed(ig_user_id="2", username=OWNER)
    assert not permissions.owner_may_sign_in(ig_user_id="2", username=OWNER, account=None)


def test_a_pinned_owner_stays_an_owner_under_any_new_username():
    _pin(OWNER, "1")
    assert permissions.owner_listed(ig_user_id="1", username="acme_bakery_renamed")
    assert permissions.owner_may_sign_in(ig_user_id="1", username="new.name", account=None)


def test_removing_the_name_from_the_setting_drops_its_pinned_owner(settings):
    _pin(OWNER, "1")
    settings.OWNER_INSTAGRAM_USERNAMES = ["another_owner"]
    assert not permissions.owner_listed(ig_user_id="1", username=OWNER)
    settings.OWNER_INSTAGRAM_USERNAMES = []
    assert not permissions.owner_listed(ig_user_id="1", username=OWNER)


@pytest.mark.parametrize(
    "username",
    [
        "\u212aate_shop",  # KELVIN SIGN: str.lower() makes it "kate_shop"
        "\uff4bate_shop",  # FULLWIDTH LATIN SMALL LETTER K
        "kate_shop\u0307",  # a combining dot above
        "kate_shop\x00",
        "kate shop",
    ],
)
def test_usernames_that_only_fold_to_a_listed_name_are_not_owners(settings, username):
    settings.OWNER_INSTAGRAM_USERNAMES = ["kate_shop"]
    assert permissions.owner_listed(ig_user_id="1", username="KATE_shop")
    assert not permissions.owner_listed(ig_user_id="1", username=username)
    assert not permissions.owner_may_sign_in(ig_user_id="1", username=username, account=None)


def test_is_owner_follows_the_pin_on_every_request(django_user_model):
    owner = django_user_model.objects.create_user(username="instagram-1")
    make_account(username="acme_bakery_renamed", ig_user_id="1", user=owner)
    impostor = django_user_model.objects.create_user(username="instagram-2")
    make_account(username=OWNER, ig_user_id="2", user=impostor)
    pin = _pin(OWNER, "1")
    owner, impostor = (django_user_model.objects.get(pk=u.pk) for u in (owner, impostor))
    assert permissions.is_owner(owner)
    assert not permissions.is_owner(impostor)
    pin.delete()
    owner, impostor = (django_user_model.objects.get(pk=u.pk) for u in (owner, impostor))
    assert not permissions.is_owner(owner)  # its current name is not listed
    assert permissions.is_owner(impostor)  # the name is free again


def test_the_owner_rule_costs_one_query(django_assert_num_queries):
    _pin(OWNER, "1")
    with django_assert_num_queries(1):
        assert permissions.owner_listed(ig_user_id="1", username="renamed")
    with django_assert_num_queries(1):
        assert not permissions.owner_listed(ig_user_id="2", username=OWNER)
