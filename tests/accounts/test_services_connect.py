"""accounts/services/connect.py: the write paths behind sign-in, connect, invites,
imports, owner actions, Meta's callbacks and key rotation."""

# ruff: noqa: F811  (pytest fixtures imported from tests.accounts.connect_support)

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
import responses
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.db.models import QuerySet
from django.utils import timezone

from accounts import crypto, instagram
from accounts.models import (
    AccessToken,
    DataDeletionRequest,
    InstagramAccount,
    Invite,
    RefreshAttempt,
)
from accounts.services import connect
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import OWNER, agent_settings, database_dump, ig  # noqa: F401
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


def _login(*, username=OWNER, user_id=fakes.USER_ID, token=fakes.LONG_TOKEN, app_scoped_id=""):
    return connect.InstagramLogin(
        grant=instagram.TokenGrant(
            access_token=token, expires_at=timezone.now() + timedelta(days=60)
        ),
        profile=instagram.Profile(
            user_id=user_id, id=app_scoped_id or fakes.APP_SCOPED_ID, username=username
        ),
    )


# --- token_obtain_from_code ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["observed", "documented"])
def test_token_obtain_runs_the_three_calls_in_order(ig, shape):
    fakes.register_login(ig, shape=shape)
    login = connect.token_obtain_from_code(
        code="AQDcode#_", redirect_uri="https://agent.example.com/oauth/instagram/callback/"
    )
    assert login.grant.access_token == fakes.LONG_TOKEN
    assert login.profile.user_id == fakes.USER_ID
    assert "instagram_business_basic" in login.permissions
    assert [c.request.method for c in ig.calls] == ["POST", "GET", "GET"]
    assert not InstagramAccount.objects.exists()


# --- Sign-in -------------------------------------------------------------------------------------


def test_sign_in_creates_account_token_and_linked_user():
    result = connect.account_sign_in(login=_login())
    account = result.account
    assert result.created
    assert account.user == result.user
    assert result.user.username == f"instagram-{fakes.USER_ID}"
    assert not result.user.has_usable_password()
    assert account.connected_by == result.user
    assert AccessToken.objects.get(account=account).value == fakes.LONG_TOKEN


def test_sign_in_refuses_a_non_owner_before_storing_anything():
    with pytest.raises(connect.NotAnOwner) as err:
        connect.account_sign_in(login=_login(username="stranger"))
    assert err.value.username == "stranger"
    assert not InstagramAccount.objects.exists()
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("listed", ["acme_bakery", "ACME_BAKERY", "@Acme_Bakery"])
def test_the_allow_list_is_case_insensitive(settings, listed):
    settings.OWNER_INSTAGRAM_USERNAMES = [listed.lstrip("@").lower()]
    assert connect.owner_may_sign_in(username="Acme_Bakery", account=None)
    assert connect.owner_may_sign_in(username="@acme_bakery", account=None)


def test_staff_may_sign_in_only_when_active(settings):
    settings.OWNER_INSTAGRAM_USERNAMES = []
    staff = get_user_model().objects.create_user(username="staff", is_staff=True)
    account = make_account(username="boss", user=staff)
    assert connect.owner_may_sign_in(username="boss", account=account)
    staff.is_active = False
    staff.save()
    account.refresh_from_db()
    assert not connect.owner_may_sign_in(username="boss", account=account)
    assert not connect.owner_may_sign_in(username="boss", account=None)


def test_sign_in_twice_keeps_one_account_one_user_and_the_chosen_slug():
    first = connect.account_sign_in(login=_login())
    connect.account_rename(account=first.account, slug="shop")
    second = connect.account_sign_in(login=_login(token="IGAAnewLongLivedToken77"))
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
    result = connect.account_sign_in(login=_login())
    assert stale_reads["n"] == 1
    assert InstagramAccount.objects.count() == 1
    assert result.account.pk == winner.pk and result.account.slug == "winner"
    assert not result.created
    assert AccessToken.objects.get().value == fakes.LONG_TOKEN


def test_a_race_that_keeps_failing_is_not_retried_forever(monkeypatch):
    def always_integrity_error(**kw):
        raise IntegrityError("duplicate")

    monkeypatch.setattr(connect, "_account_upsert", always_integrity_error)
    with pytest.raises(IntegrityError):
        connect.account_sign_in(login=_login())
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
            connect.account_sign_in(login=_login(token=f"IGAAconcurrentToken{n:04d}"))
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
    result = connect.account_connect(login=_login(username="client_cafe"), connected_by=owner)
    assert result.created and result.user is None
    assert result.account.user is None and result.account.connected_by == owner


def test_connect_by_invite_uses_the_invite_in_the_same_transaction():
    invite = connect.invite_create(created_by=None, days=1)
    result = connect.account_connect_by_invite(login=_login(username="cafe"), invite=invite)
    invite.refresh_from_db()
    assert invite.used_at is not None and invite.account == result.account
    with pytest.raises(connect.InviteError) as err:
        connect.account_connect_by_invite(
            login=_login(username="other", user_id="2"), invite=invite
        )
    assert err.value.reason == connect.InviteError.USED
    assert not InstagramAccount.objects.filter(ig_user_id="2").exists()


def test_invite_links_are_signed_single_use_and_expiring():
    now = timezone.now()
    invite = connect.invite_create(created_by=None, note=" Cafe ", days=2, now=now)
    assert invite.note == "Cafe" and invite.expires_at == now + timedelta(days=2)
    token = connect.invite_link_token(invite=invite)
    assert invite.key in token and token != invite.key
    assert connect.invite_resolve(token=token, now=now).pk == invite.pk
    with pytest.raises(connect.InviteError) as err:
        connect.invite_resolve(token=token, now=now + timedelta(days=2))
    assert err.value.reason == connect.InviteError.EXPIRED
    for bad in (token + "x", token.replace(invite.key, invite.key[::-1]), "", invite.key):
        with pytest.raises(connect.InviteError) as err:
            connect.invite_resolve(token=bad, now=now)
        assert err.value.reason == connect.InviteError.TAMPERED
    Invite.objects.filter(pk=invite.pk).update(used_at=now)
    with pytest.raises(connect.InviteError) as err:
        connect.invite_resolve(token=token, now=now)
    assert err.value.reason == connect.InviteError.USED


def test_a_signature_from_another_secret_key_is_tampered(settings):
    invite = connect.invite_create(created_by=None)
    token = connect.invite_link_token(invite=invite)
    settings.SECRET_KEY = "another-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(connect.InviteError) as err:
        connect.invite_resolve(token=token)
    assert err.value.reason == connect.InviteError.TAMPERED


@pytest.mark.parametrize("days", [0, -1, 31])
def test_invite_lifetime_is_bounded(days):
    with pytest.raises(connect.ConnectError):
        connect.invite_create(created_by=None, days=days)
    assert not Invite.objects.exists()


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
    assert connect._slug_from_username(username) == slug


def test_disconnect_deletes_the_token_and_stops_refreshing():
    account = make_account(username="cafe")
    connect.account_disconnect(account=account)
    account.refresh_from_db()
    assert account.status == InstagramAccount.Status.DISCONNECTED
    assert not AccessToken.objects.filter(account=account).exists()
    from accounts.selectors.refresh import accounts_due_for_refresh

    assert account not in accounts_due_for_refresh(now=timezone.now() + timedelta(days=30))


def test_rename_checks_format_and_uniqueness():
    a = make_account(username="cafe", slug="cafe")
    make_account(username="shop", slug="shop")
    for bad in ("", "has space", "ü", "x" * 65, "a/b"):
        with pytest.raises(connect.SlugError):
            connect.account_rename(account=a, slug=bad)
    with pytest.raises(connect.SlugError):
        connect.account_rename(account=a, slug="SHOP")  # taken, case-insensitively
    a.refresh_from_db()
    assert a.slug == "cafe"
    connect.account_rename(account=a, slug="Cafe_Main-2")
    assert InstagramAccount.objects.get(pk=a.pk).slug == "Cafe_Main-2"


def test_set_default_keeps_a_single_default():
    a, b = make_account(username="a_a", is_default=True), make_account(username="b_b")
    connect.account_set_default(account=b)
    assert list(InstagramAccount.objects.filter(is_default=True)) == [b]
    a.refresh_from_db()
    assert not a.is_default


# --- Imports -------------------------------------------------------------------------------------


def test_import_validates_with_me_before_storing(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    with pytest.raises(connect.TokenInvalid) as err:
        connect.account_import_token(access_token="IGAAdeadTokenValue12345")
    assert "does not accept this token" in str(err.value)
    assert "IGAAdeadTokenValue12345" not in str(err.value)
    assert not InstagramAccount.objects.exists()
    assert len(ig.calls) == 1  # no refresh attempted


@pytest.mark.parametrize("value", ["", "   ", "two words"])
def test_import_refuses_an_empty_or_spaced_token_without_calling_instagram(ig, value):
    with pytest.raises(connect.TokenInvalid):
        connect.account_import_token(access_token=value)
    assert not ig.calls


def test_import_refreshes_to_learn_the_expiry(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    result = connect.account_import_token(access_token="IGAApastedToken123456")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == fakes.REFRESHED_TOKEN  # what the refresh returned
    assert token.refreshed_at is not None
    assert timedelta(days=59) < token.expires_at - timezone.now() < timedelta(days=61)
    assert result.created and result.account.slug == OWNER


def test_import_of_a_token_younger_than_a_day(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(100, message="Token must be at least 24 hours old"),
        status=400,
    )
    result = connect.account_import_token(access_token="IGAAyoungToken1234567")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == "IGAAyoungToken1234567"
    assert timedelta(days=58) < token.expires_at - timezone.now() <= timedelta(days=59)
    assert "24 hours" in result.note


def test_import_when_the_refresh_fails_marks_the_expiry_unknown(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(responses.GET, fakes.REFRESH_URL, json=fakes.graph_error(2), status=500)
    result = connect.account_import_token(access_token="IGAAokToken123456789")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == "IGAAokToken123456789"
    assert token.expires_at - timezone.now() <= timedelta(days=7)
    from accounts.services.refresh import token_is_due

    assert token_is_due(token=token, account=result.account, now=timezone.now())
    assert "unknown" in result.note


def test_import_with_a_slug_taken_by_another_account_stores_nothing(ig):
    other = make_account(username="someone", slug="shop", ig_user_id="1")
    before = AccessToken.objects.get(account=other).ciphertext
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    with pytest.raises(connect.SlugError):
        connect.account_import_token(access_token="IGAApasted1234567890", slug="shop")
    assert InstagramAccount.objects.count() == 1
    assert AccessToken.objects.get(account=other).ciphertext == before
    assert not [c for c in ig.calls if c.request.url.startswith(fakes.REFRESH_URL)]


def test_import_updates_and_renames_an_existing_account(ig):
    account = make_account(username=OWNER, slug="old", ig_user_id=fakes.USER_ID)
    InstagramAccount.objects.filter(pk=account.pk).update(
        status=InstagramAccount.Status.NEEDS_RECONNECT
    )
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    result = connect.account_import_token(access_token="IGAApasted1234567890", slug="new")
    assert not result.created and result.account.pk == account.pk
    account.refresh_from_db()
    assert account.slug == "new" and account.status == InstagramAccount.Status.ACTIVE


def test_instatokend_config_parsing():
    config = connect.instatokend_config_parse(
        text=json.dumps(
            {
                "port": "8080",
                "refresh_freq": "weekly",
                "my-instagram-1": {"token": " IGAAone1234567890 "},
                "my-instagram-2": {"token": "IGAAtwo1234567890"},
            }
        )
    )
    assert config.accounts == [
        ("my-instagram-1", "IGAAone1234567890"),
        ("my-instagram-2", "IGAAtwo1234567890"),
    ]
    assert config.refresh_frequency == "weekly"
    assert any("port" in n for n in config.notes)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"port": "1"}', "names no account"),
        ('{"a": "IGAAx"}', "expected"),
        ('{"a": {"token": 5}}', "expected"),
        ('{"a": {"token": "  "}}', "empty"),
    ],
)
def test_instatokend_config_errors(text, says):
    with pytest.raises(connect.ImportConfigError) as err:
        connect.instatokend_config_parse(text=text)
    assert says in str(err.value)


def test_instatokend_test_frequency_is_noted_not_applied():
    config = connect.instatokend_config_parse(text='{"refresh_freq": "test", "a": {"token": "x"}}')
    assert config.refresh_frequency is None and "test" in config.notes[0]


def test_instatokend_import_is_all_or_nothing(ig):
    def me_for(request):
        token = dict(p.split("=") for p in request.url.split("?")[1].split("&"))["access_token"]
        if token == "IGAAbad1234567890":
            return (400, {}, json.dumps(fakes.graph_error(190)))
        user = {"IGAAone1234567890": ("1", "one"), "IGAAtwo1234567890": ("2", "two")}[token]
        return (200, {}, json.dumps(fakes.me(user_id=user[0], username=user[1])))

    ig.add_callback(responses.GET, fakes.ME_URL, callback=me_for)
    fakes.register_refresh(ig)
    config = connect.instatokend_config_parse(
        text=json.dumps(
            {
                "a": {"token": "IGAAone1234567890"},
                "b": {"token": "IGAAbad1234567890"},
                "c": {"token": "IGAAtwo1234567890"},
            }
        )
    )
    with pytest.raises(connect.TokenInvalid) as err:
        connect.accounts_import_instatokend(config=config)
    assert str(err.value).startswith("b: ")
    assert not InstagramAccount.objects.exists()


def test_starting_token_is_imported_once(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.refreshed(token="IGAAstartingToken1234"),  # same string comes back
    )
    first = connect.starting_token_import(access_token="IGAAstartingToken1234")
    assert first is not None and first.account.is_default
    calls = len(ig.calls)
    assert connect.starting_token_import(access_token="IGAAstartingToken1234") is None
    assert len(ig.calls) == calls  # recognised locally, no call to Instagram
    assert InstagramAccount.objects.count() == 1


def test_starting_token_is_not_reimported_over_a_refreshed_token(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    make_account(username=OWNER, ig_user_id=fakes.USER_ID, token="IGAAnewerRefreshedOne")
    assert connect.starting_token_import(access_token="IGAAoriginalStarting1") is None
    assert AccessToken.objects.get().value == "IGAAnewerRefreshedOne"


def test_starting_token_unset_does_nothing(ig):
    assert connect.starting_token_import(access_token="") is None
    assert not ig.calls


# --- Meta's signed_request -----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request(payload: dict, secret: str = "test-app-secret") -> str:
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{_b64(sig)}.{body}"


def test_signed_request_verifies_and_normalises_the_user_id():
    payload = connect.meta_signed_request_parse(
        signed_request=signed_request({"algorithm": "HMAC-SHA256", "user_id": 17841400000000001}),
        app_secret="test-app-secret",
    )
    assert payload["user_id"] == "17841400000000001"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "no-dot",
        "a.b.c",
        ".payload",
        "sig.",
        signed_request({"algorithm": "HMAC-SHA256", "user_id": "1"}, secret="wrong"),
        signed_request({"algorithm": "HMAC-SHA1", "user_id": "1"}),
        signed_request({"algorithm": "none", "user_id": "1"}),
        signed_request({"algorithm": "HMAC-SHA256"}),
        signed_request({"algorithm": "HMAC-SHA256", "user_id": ""}),
        signed_request({"algorithm": "HMAC-SHA256", "user_id": True}),
        "!!!!." + _b64(b'{"algorithm": "HMAC-SHA256", "user_id": "1"}'),
        "é.é",
    ],
)
def test_signed_request_refusals(value):
    with pytest.raises(connect.SignedRequestError):
        connect.meta_signed_request_parse(signed_request=value, app_secret="test-app-secret")


def test_signed_request_over_a_non_object_payload_is_refused():
    body = _b64(b"[1]")
    sig = _b64(hmac.new(b"test-app-secret", body.encode(), hashlib.sha256).digest())
    with pytest.raises(connect.SignedRequestError):
        connect.meta_signed_request_parse(
            signed_request=f"{sig}.{body}", app_secret="test-app-secret"
        )


def test_signed_request_without_a_secret_is_refused():
    with pytest.raises(connect.SignedRequestError):
        connect.meta_signed_request_parse(
            signed_request=signed_request({"algorithm": "HMAC-SHA256", "user_id": "1"}),
            app_secret="",
        )


def test_deauthorize_matches_either_id():
    by_ig = make_account(username="a_a", ig_user_id="111", app_scoped_id="aaa")
    by_app = make_account(username="b_b", ig_user_id="222", app_scoped_id="bbb")
    untouched = make_account(username="c_c", ig_user_id="333", app_scoped_id="ccc")
    assert connect.account_deauthorize(ig_user_id="111") == 1
    assert connect.account_deauthorize(ig_user_id="bbb") == 1
    for account in (by_ig, by_app):
        account.refresh_from_db()
        assert account.status == InstagramAccount.Status.DISCONNECTED
        assert "removed this app" in account.last_error
        assert not AccessToken.objects.filter(account=account).exists()
    untouched.refresh_from_db()
    assert untouched.status == InstagramAccount.Status.ACTIVE
    assert connect.account_deauthorize(ig_user_id="nobody") == 0


def test_data_deletion_deletes_account_token_history_and_sign_in_user():
    user = get_user_model().objects.create_user(username="instagram-111")
    staff = get_user_model().objects.create_user(username="boss", is_staff=True)
    gone = make_account(username="a_a", ig_user_id="111", user=user)
    kept_user = make_account(username="b_b", ig_user_id="222", app_scoped_id="xyz", user=staff)
    RefreshAttempt.objects.create(account=gone, outcome=RefreshAttempt.Outcome.SUCCESS)
    request = connect.account_data_delete(ig_user_id="111")
    assert request.accounts_deleted == 1 and request.completed_at is not None
    assert not InstagramAccount.objects.filter(pk=gone.pk).exists()
    assert not RefreshAttempt.objects.exists()
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    connect.account_data_delete(ig_user_id="xyz")
    assert not InstagramAccount.objects.filter(pk=kept_user.pk).exists()
    assert get_user_model().objects.filter(pk=staff.pk).exists()  # never delete staff
    assert DataDeletionRequest.objects.count() == 2
    assert connect.account_data_delete(ig_user_id="nobody").accounts_deleted == 0


# --- Key rotation --------------------------------------------------------------------------------


def test_rotation_re_encrypts_under_the_newest_key(settings):
    old = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = old
    make_account(username="a_a", token="IGAAfirstToken1234567")
    make_account(username="b_b", token="IGAAsecondToken123456")
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = f"{new},{old}"
    result = connect.tokens_rotate_key()
    assert result.rotated == 2 and result.unreadable == []
    settings.TOKEN_ENCRYPTION_KEY = new  # the old key can go now
    values = sorted(t.value for t in AccessToken.objects.all())
    assert values == ["IGAAfirstToken1234567", "IGAAsecondToken123456"]
    assert "IGAAfirstToken" not in database_dump()


def test_rotation_reports_tokens_no_key_opens(settings):
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    make_account(username="a_a", token="IGAAfirstToken1234567")
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    result = connect.tokens_rotate_key()
    assert result.rotated == 0 and result.unreadable == ["a-a"]
    with pytest.raises(crypto.InvalidToken):
        AccessToken.objects.get().value  # noqa: B018
