"""accounts/services/meta.py: Meta's signed_request, deauthorize and data deletion."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import AccessToken, DataDeletionRequest, InstagramAccount, RefreshAttempt
from accounts.services import meta
from tests.factories import make_account
from tests.instagram_fakes import b64url, signed_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


# --- Meta's signed_request -----------------------------------------------------------------------


def test_signed_request_verifies_and_normalises_the_user_id():
    payload = meta.meta_signed_request_parse(
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
        "!!!!." + b64url(b'{"algorithm": "HMAC-SHA256", "user_id": "1"}'),
        "é.é",
    ],
)
def test_signed_request_refusals(value):
    with pytest.raises(meta.SignedRequestError):
        meta.meta_signed_request_parse(signed_request=value, app_secret="test-app-secret")


def test_signed_request_over_a_non_object_payload_is_refused():
    body = b64url(b"[1]")
    sig = b64url(hmac.new(b"test-app-secret", body.encode(), hashlib.sha256).digest())
    with pytest.raises(meta.SignedRequestError):
        meta.meta_signed_request_parse(signed_request=f"{sig}.{body}", app_secret="test-app-secret")


def test_signed_request_without_a_secret_is_refused():
    with pytest.raises(meta.SignedRequestError):
        meta.meta_signed_request_parse(
            signed_request=signed_request({"algorithm": "HMAC-SHA256", "user_id": "1"}),
            app_secret="",
        )


def test_deauthorize_matches_either_id():
    by_ig = make_account(username="a_a", ig_user_id="111", app_scoped_id="aaa")
    by_app = make_account(username="b_b", ig_user_id="222", app_scoped_id="bbb")
    untouched = make_account(username="c_c", ig_user_id="333", app_scoped_id="ccc")
    assert meta.account_deauthorize(ig_user_id="111") == 1
    assert meta.account_deauthorize(ig_user_id="bbb") == 1
    for account in (by_ig, by_app):
        account.refresh_from_db()
        assert account.status == InstagramAccount.Status.DISCONNECTED
        assert "removed this app" in account.last_error
        assert not AccessToken.objects.filter(account=account).exists()
    untouched.refresh_from_db()
    assert untouched.status == InstagramAccount.Status.ACTIVE
    assert meta.account_deauthorize(ig_user_id="nobody") == 0


def test_data_deletion_deletes_account_token_history_and_sign_in_user():
    user = get_user_model().objects.create_user(username="instagram-111")
    staff = get_user_model().objects.create_user(username="boss", is_staff=True)
    gone = make_account(username="a_a", ig_user_id="111", user=user)
    kept_user = make_account(username="b_b", ig_user_id="222", app_scoped_id="xyz", user=staff)
    RefreshAttempt.objects.create(account=gone, outcome=RefreshAttempt.Outcome.SUCCESS)
    request = meta.account_data_delete(ig_user_id="111")
    assert request.accounts_deleted == 1 and request.completed_at is not None
    assert not InstagramAccount.objects.filter(pk=gone.pk).exists()
    assert not RefreshAttempt.objects.exists()
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    meta.account_data_delete(ig_user_id="xyz")
    assert not InstagramAccount.objects.filter(pk=kept_user.pk).exists()
    assert get_user_model().objects.filter(pk=staff.pk).exists()  # never delete staff
    assert DataDeletionRequest.objects.count() == 2
    assert meta.account_data_delete(ig_user_id="nobody").accounts_deleted == 0


# --- Replayed deauthorize (docs/SECURITY.md row 17) ----------------------------------------------


def test_signed_request_issued_at_becomes_an_aware_datetime_or_none():
    payload = meta.meta_signed_request_parse(
        signed_request=signed_request(
            {"algorithm": "HMAC-SHA256", "issued_at": 1741944413, "user_id": "1"}
        ),
        app_secret="test-app-secret",
    )
    assert payload["issued_at"] == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    payload = meta.meta_signed_request_parse(
        signed_request=signed_request({"algorithm": "HMAC-SHA256", "user_id": "1"}),
        app_secret="test-app-secret",
    )
    assert payload["issued_at"] is None


@pytest.mark.parametrize("issued_at", ["1741944413", True, 10**30, -(10**30), [1], {"a": 1}])
def test_signed_request_with_a_malformed_issued_at_is_refused(issued_at):
    value = signed_request({"algorithm": "HMAC-SHA256", "issued_at": issued_at, "user_id": "1"})
    with pytest.raises(meta.SignedRequestError, match="issued_at"):
        meta.meta_signed_request_parse(signed_request=value, app_secret="test-app-secret")


def test_deauthorize_issued_before_the_last_connection_is_ignored():
    connected = timezone.now().replace(microsecond=500_000)
    account = make_account(username="a_a", ig_user_id="111", connected_at=connected)
    assert meta.account_deauthorize(ig_user_id="111", issued_at=connected - timedelta(hours=1)) == 0
    account.refresh_from_db()
    assert account.status == InstagramAccount.Status.ACTIVE
    assert AccessToken.objects.filter(account=account).exists()
    # Issued in the second of the connection (issued_at has whole seconds): it counts.
    same_second = connected.replace(microsecond=0)
    assert meta.account_deauthorize(ig_user_id="111", issued_at=same_second) == 1
    account.refresh_from_db()
    assert account.status == InstagramAccount.Status.DISCONNECTED


def test_deauthorize_of_an_account_never_connected_since_the_upgrade_counts_from_its_creation():
    account = make_account(username="a_a", ig_user_id="111")
    InstagramAccount.objects.filter(pk=account.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    before = timezone.now() - timedelta(hours=2)
    assert meta.account_deauthorize(ig_user_id="111", issued_at=before) == 0
    after = timezone.now() - timedelta(minutes=30)
    assert meta.account_deauthorize(ig_user_id="111", issued_at=after) == 1


def test_data_deletion_repeated_deletes_nothing_more_and_records_each_request():
    make_account(username="a_a", ig_user_id="111")
    assert meta.account_data_delete(ig_user_id="111").accounts_deleted == 1
    assert meta.account_data_delete(ig_user_id="111").accounts_deleted == 0
    assert DataDeletionRequest.objects.count() == 2
