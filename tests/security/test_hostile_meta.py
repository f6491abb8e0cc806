"""Hostile input on Meta's callbacks (``POST /instagram/deauthorize/`` and
``POST /instagram/data-deletion/``): a ``signed_request`` that is garbage, forged
with another secret, tampered with, or signed with another algorithm changes
nothing and answers 400; even a correctly signed payload of any shape answers
without a 500; the public status page reflects nothing."""

import json
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import DataDeletionRequest, InstagramAccount
from tests import instagram_fakes as fakes
from tests.instagram_fakes import b64url, meta_post, signed_request
from tests.security import hostile

SECRET = fakes.APP_SECRET
CALLBACKS = ["/instagram/deauthorize/", "/instagram/data-deletion/"]
FUZZ = hostile.fuzz(max_examples=80)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile.text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile.text, inner, max_size=3),
    max_leaves=8,
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"algorithm": st.sampled_from(["HMAC-SHA256", "hmac-sha256"]), "user_id": json_values},
        optional={"issued_at": json_values},
    ),
)


@FUZZ
@given(path=st.sampled_from(CALLBACKS), value=hostile.text)
def test_a_garbage_signed_request_is_refused_and_changes_nothing(cafe, path, value):
    before = hostile.snapshot()
    response = meta_post(path, value)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid signed_request"}
    hostile.assert_not_reflected(response, value)
    assert hostile.snapshot() == before


@FUZZ
@given(
    path=st.sampled_from(CALLBACKS),
    sig=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/"),
    payload=payloads,
)
def test_a_well_formed_but_unsigned_request_is_refused(cafe, path, sig, payload):
    before = hostile.snapshot()
    response = meta_post(path, f"{sig}.{b64url(json.dumps(payload).encode())}")
    assert response.status_code == 400
    assert hostile.snapshot() == before


@FUZZ
@given(path=st.sampled_from(CALLBACKS), payload=payloads, secret=hostile.text)
def test_a_request_signed_with_another_secret_is_refused(cafe, path, payload, secret):
    if secret == SECRET:  # pragma: no cover (hypothesis will not guess it)
        return
    before = hostile.snapshot()
    assert meta_post(path, signed_request(payload, secret)).status_code == 400
    assert hostile.snapshot() == before


@pytest.mark.parametrize("path", CALLBACKS)
def test_a_signature_does_not_carry_over_to_another_payload(cafe, path):
    genuine = signed_request({"algorithm": "HMAC-SHA256", "user_id": "222"})
    signature = genuine.split(".")[0]
    forged = b64url(json.dumps({"algorithm": "HMAC-SHA256", "user_id": "111"}).encode())
    assert meta_post(path, f"{signature}.{forged}").status_code == 400
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE


@pytest.mark.parametrize("path", CALLBACKS)
@pytest.mark.parametrize("algorithm", [None, "none", "HS256", "HMAC-SHA1", "", "HMAC-SHA256 "])
def test_only_hmac_sha256_is_accepted(cafe, path, algorithm):
    payload = (
        {"user_id": "111"} if algorithm is None else {"algorithm": algorithm, "user_id": "111"}
    )
    assert meta_post(path, signed_request(payload)).status_code == 400
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE


@pytest.mark.parametrize("path", CALLBACKS)
def test_with_no_app_secret_configured_nothing_verifies(cafe, path, settings):
    settings.INSTAGRAM_APP_SECRET = ""
    before = hostile.snapshot()
    assert (
        meta_post(
            path, signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}, "")
        ).status_code
        == 400
    )
    assert hostile.snapshot() == before


@FUZZ
@given(path=st.sampled_from(CALLBACKS), payload=payloads)
def test_any_correctly_signed_payload_is_answered_without_a_500(cafe, path, payload):
    """Authorised input (it carries the app secret's signature) of any shape: a clear
    answer, and the account is touched only when the user_id names it."""
    response = meta_post(path, signed_request(payload))
    assert response.status_code in (200, 400), response.status_code
    hostile.assert_headers_clean(response)
    names_cafe = isinstance(payload, dict) and str(payload.get("user_id", "")).strip() in (
        "111",
        "999",
    )
    if not names_cafe:
        assert InstagramAccount.objects.filter(slug="cafe", status="active").exists()


@pytest.mark.parametrize("path", CALLBACKS)
@pytest.mark.parametrize("user_id", ["\x00", "111\x00", "x" * 10_000, -1, 10**30, "１１１"])
def test_odd_user_ids_in_a_signed_payload_are_answered_without_a_500(cafe, path, user_id):
    response = meta_post(path, signed_request({"algorithm": "HMAC-SHA256", "user_id": user_id}))
    assert response.status_code in (200, 400)
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("path", CALLBACKS)
def test_callbacks_accept_only_post(cafe, path, method):
    assert getattr(Client(), method)(path).status_code == 405


@pytest.mark.parametrize("path", CALLBACKS)
def test_a_json_body_instead_of_a_form_is_refused(cafe, path):
    body = json.dumps(
        {"signed_request": signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"})}
    )
    response = Client().post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE


@FUZZ
@given(code=hostile.text)
def test_the_deletion_status_page_reflects_nothing(code):
    response = Client().get(f"/instagram/data-deletion/{quote(code, safe='')}/")
    assert response.status_code in (404, 301)
    hostile.assert_not_reflected(response, code)


def test_the_deletion_status_page_shows_no_personal_data(cafe):
    response = meta_post(
        "/instagram/data-deletion/", signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"})
    )
    assert response.status_code == 200
    url = response.json()["url"]
    page = Client().get(url.replace("http://testserver", "")).content.decode()
    assert "cafe_shop" not in page and "111" not in page
    assert DataDeletionRequest.objects.count() == 1


def test_a_nul_in_a_deletion_code_is_a_404_before_any_query():
    """Regression: PostgreSQL refuses NUL in a query, which made this a 500."""
    from django.urls import Resolver404, resolve

    with pytest.raises(Resolver404):
        resolve("/instagram/data-deletion/abc\x00def/")


def test_a_signed_user_id_with_a_nul_is_refused_before_any_query():
    """Regression: a NUL in the (signed) user_id reached PostgreSQL: a 500."""
    from accounts.services.meta import SignedRequestError, meta_signed_request_parse

    value = signed_request({"algorithm": "HMAC-SHA256", "user_id": "111\x00"})
    with pytest.raises(SignedRequestError):
        meta_signed_request_parse(signed_request=value, app_secret=SECRET)


def test_a_deauthorize_replayed_after_reconnecting_is_ignored(cafe):
    """A captured deauthorize, replayed after the owner connected the account
    again, must not disconnect it a second time (``issued_at`` predates it)."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts import instagram
    from accounts.models import AccessToken
    from accounts.services.signin import InstagramLogin, account_connect

    InstagramAccount.objects.filter(pk=cafe.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    issued = int((timezone.now() - timedelta(minutes=5)).timestamp())
    captured = signed_request({"algorithm": "HMAC-SHA256", "issued_at": issued, "user_id": "111"})
    assert meta_post("/instagram/deauthorize/", captured).json()["accounts"] == 1
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.DISCONNECTED

    account_connect(
        login=InstagramLogin(
            grant=instagram.TokenGrant(
                access_token="IGAAreconnectedToken123456",
                expires_at=timezone.now() + timedelta(days=60),
            ),
            profile=instagram.Profile(user_id="111", id="999", username="cafe_shop"),
        ),
        connected_by=None,
    )
    response = meta_post("/instagram/deauthorize/", captured)
    assert response.status_code == 200 and response.json()["accounts"] == 0
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE
    assert AccessToken.objects.get(account=cafe).value == "IGAAreconnectedToken123456"

    later = int(timezone.now().timestamp()) + 1
    fresh = signed_request({"algorithm": "HMAC-SHA256", "issued_at": later, "user_id": "111"})
    assert meta_post("/instagram/deauthorize/", fresh).json()["accounts"] == 1
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.DISCONNECTED
