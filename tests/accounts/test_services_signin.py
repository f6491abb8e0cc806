"""accounts/services/signin.py: the code exchange, the owner's sign-in (refusals
before anything is stored, races, pinning the listed username), connecting
another account and connecting through an invite."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.db.models import QuerySet

from accounts.models import AccessToken, InstagramAccount, OwnerIdentity
from accounts.services import accounts as account_services
from accounts.services import invites, signin
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import OWNER, instagram_login
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


# --- token_obtain_from_code ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["observed", "documented"])
def test_token_obtain_runs_the_three_calls_in_order(ig, shape):
    fakes.register_login(ig, shape=shape)
    login = signin.token_obtain_from_code(
        code="AQDcode#_", redirect_uri="https://agent.example.com/oauth/instagram/callback/"
    )
    assert login.grant.access_token == fakes.LONG_TOKEN
    assert login.profile.user_id == fakes.USER_ID
    assert "instagram_business_basic" in login.permissions
    assert [c.request.method for c in ig.calls] == ["POST", "GET", "GET"]
    assert not InstagramAccount.objects.exists()


# --- Sign-in -------------------------------------------------------------------------------------


def test_sign_in_creates_account_token_and_linked_user():
    result = signin.account_sign_in(login=instagram_login())
    account = result.account
    assert result.created
    assert account.user == result.user
    assert result.user.username == f"instagram-{fakes.USER_ID}"
    assert not result.user.has_usable_password()
    assert account.connected_by == result.user
    assert AccessToken.objects.get(account=account).value == fakes.LONG_TOKEN


def test_sign_in_refuses_a_non_owner_before_storing_anything():
    with pytest.raises(signin.NotAnOwner) as err:
        signin.account_sign_in(login=instagram_login(username="stranger"))
    assert err.value.username == "stranger"
    assert not InstagramAccount.objects.exists()
    assert not get_user_model().objects.exists()


def test_sign_in_twice_keeps_one_account_one_user_and_the_chosen_slug():
    first = signin.account_sign_in(login=instagram_login())
    account_services.account_rename(account=first.account, slug="shop")
    second = signin.account_sign_in(login=instagram_login(token="IGAAnewLongLivedToken77"))
    assert not second.created
    assert second.account.pk == first.account.pk
    assert second.account.slug == "shop"
    assert second.user.pk == first.user.pk
    assert AccessToken.objects.get().value == "IGAAnewLongLivedToken77"
    assert get_user_model().objects.count() == 1


def test_a_racing_create_is_retried_as_an_update(monkeypatch):
    """The other request committed the same account after our read: our INSERT hits
    the unique ig_user_id, and the retry updates the winner's row instead."""
    winner = make_account(username=OWNER, slug="winner", ig_user_id=fakes.USER_ID, token=None)
    real_select_for_update = QuerySet.select_for_update
    stale_reads = {"n": 0}

    def first_read_is_stale(self, *args, **kwargs):
        qs = real_select_for_update(self, *args, **kwargs)
        if self.model is InstagramAccount and stale_reads["n"] == 0:
            stale_reads["n"] += 1
            return qs.none()
        return qs

    monkeypatch.setattr(QuerySet, "select_for_update", first_read_is_stale)
    result = signin.account_sign_in(login=instagram_login())
    assert stale_reads["n"] == 1
    assert InstagramAccount.objects.count() == 1
    assert result.account.pk == winner.pk and result.account.slug == "winner"
    assert not result.created
    assert AccessToken.objects.get().value == fakes.LONG_TOKEN


def test_a_race_that_keeps_failing_is_not_retried_forever(monkeypatch):
    def always_integrity_error(**kw):
        raise IntegrityError("duplicate")

    monkeypatch.setattr(signin, "account_upsert", always_integrity_error)
    with pytest.raises(IntegrityError):
        signin.account_sign_in(login=instagram_login())
    assert not InstagramAccount.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sign_ins_store_one_account_and_one_token():
    """Real concurrency needs a server database (SQLite's in-memory test database
    locks whole tables across threads)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    barrier = threading.Barrier(4)
    errors = []

    def sign_in(n):
        try:
            barrier.wait()
            signin.account_sign_in(login=instagram_login(token=f"IGAAconcurrentToken{n:04d}"))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert InstagramAccount.objects.count() == 1
    assert AccessToken.objects.count() == 1
    assert AccessToken.objects.get().version == 4
    assert get_user_model().objects.count() == 1


# --- Connect another / invites -------------------------------------------------------------------


def test_connect_links_no_user_and_records_who_connected(django_user_model):
    owner = django_user_model.objects.create_user(username="owner")
    result = signin.account_connect(
        login=instagram_login(username="client_cafe"), connected_by=owner
    )
    assert result.created and result.user is None
    assert result.account.user is None and result.account.connected_by == owner


def test_connect_by_invite_uses_the_invite_in_the_same_transaction():
    invite = invites.invite_create(created_by=None, days=1)
    result = signin.account_connect_by_invite(login=instagram_login(username="cafe"), invite=invite)
    invite.refresh_from_db()
    assert invite.used_at is not None and invite.account == result.account
    with pytest.raises(invites.InviteError) as err:
        signin.account_connect_by_invite(
            login=instagram_login(username="other", user_id="2"), invite=invite
        )
    assert err.value.reason == invites.InviteError.USED
    assert not InstagramAccount.objects.filter(ig_user_id="2").exists()


# --- Pinning the owner's Instagram id (docs/SECURITY.md row 16) ----------------------------------


def test_the_first_sign_in_of_a_listed_username_pins_its_instagram_id():
    signin.account_sign_in(login=instagram_login(username="Acme_Bakery"))
    pins = list(OwnerIdentity.objects.values_list("username", "ig_user_id"))
    assert pins == [(OWNER, fakes.USER_ID)]
    signin.account_sign_in(login=instagram_login())
    assert OwnerIdentity.objects.count() == 1


def test_another_instagram_account_with_a_pinned_username_is_refused_storing_nothing():
    first = signin.account_sign_in(login=instagram_login())
    token_before = AccessToken.objects.get().ciphertext
    with pytest.raises(signin.NotAnOwner) as err:
        signin.account_sign_in(login=instagram_login(user_id="17841466666666666"))
    assert err.value.kind == "owner_pinned" and err.value.status == 403
    assert err.value.username == OWNER
    assert list(InstagramAccount.objects.all()) == [first.account]
    assert AccessToken.objects.get().ciphertext == token_before
    assert get_user_model().objects.count() == 1
    assert list(OwnerIdentity.objects.values_list("ig_user_id", flat=True)) == [fakes.USER_ID]


def test_a_renamed_owner_signs_in_under_the_new_username_as_the_same_user():
    first = signin.account_sign_in(login=instagram_login())
    again = signin.account_sign_in(login=instagram_login(username="acme_bakery_renamed"))
    assert not again.created and again.user.pk == first.user.pk
    assert InstagramAccount.objects.get().username == "acme_bakery_renamed"
    assert OwnerIdentity.objects.get().username == OWNER  # the pin stays on the listed name


def test_a_non_owner_refusal_says_not_owner_and_pins_nothing():
    with pytest.raises(signin.NotAnOwner) as err:
        signin.account_sign_in(login=instagram_login(username="stranger"))
    assert err.value.kind == "not_owner" and not OwnerIdentity.objects.exists()
