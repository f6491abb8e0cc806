"""Hostile input on ``POST /hooks/refresh/`` (and the owner's "refresh now"):
nothing is queued or stored without a valid HMAC of the exact body under
WEBHOOK_SECRET; no answer is a 500 or reflects its input."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from hypothesis import given
from hypothesis import strategies as st

from accounts.views import refresh as refresh_views
from tests.factories import make_account
from tests.security import hostile

SECRET = "hook-secret-for-security-tests-0123456789"
FUZZ = hostile.fuzz(max_examples=150)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch, private_cache, settings):
    """Records what the hook would queue instead of talking to a broker."""
    settings.WEBHOOK_SECRET = SECRET
    calls = []

    def fake_queue(*, account_ids, trigger, force=False):
        calls.append((tuple(account_ids), trigger, force))
        return len(account_ids)

    monkeypatch.setattr(refresh_views, "refresh_queue", fake_queue)
    make_account(username="acme_bakery", slug="acme")
    return calls


def _post(body: bytes, signature: str | None, content_type="application/json"):
    extra: dict[str, Any] = {} if signature is None else {"HTTP_X_TOKENAGENT_SIGNATURE": signature}
    return Client().post("/hooks/refresh/", data=body, content_type=content_type, **extra)


@FUZZ
@given(
    body=st.binary(max_size=500),
    signature=st.one_of(st.none(), hostile.header_text),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
        ]
    ),
)
def test_an_unsigned_or_wrongly_signed_hook_does_nothing(queued, body, signature, content_type):
    before = hostile.snapshot()
    response = _post(body, signature, content_type)
    if signature is not None and signature.strip().lower() in (
        refresh_views.signature_for(body, SECRET),
        refresh_views.signature_for(body, SECRET).removeprefix("sha256="),
    ):  # pragma: no cover (hypothesis will not forge an HMAC)
        return
    assert response.status_code == 403
    assert response.json() == {"error": "invalid or missing signature"}
    hostile.assert_not_reflected(response, signature or "")
    assert queued == []
    assert hostile.snapshot() == before


@FUZZ
@given(body=st.binary(min_size=1, max_size=300), flip=st.integers(min_value=0, max_value=299))
def test_a_valid_signature_does_not_cover_a_tampered_body(queued, body, flip):
    signature = refresh_views.signature_for(body, SECRET)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    assert _post(tampered, signature).status_code == 403
    assert queued == []


def test_a_signature_made_with_another_secret_is_refused(queued):
    body = b'{"source": "cron"}'
    assert _post(body, refresh_views.signature_for(body, "guessed-secret")).status_code == 403
    assert queued == []


def test_without_a_configured_secret_even_an_empty_key_signature_is_refused(queued, settings):
    settings.WEBHOOK_SECRET = ""
    body = b"{}"
    for signature in (refresh_views.signature_for(body, ""), "", "sha256="):
        assert _post(body, signature).status_code == 403
    assert queued == []


def test_the_correct_signature_queues_the_due_accounts(queued):
    body = b'{"source": "cron"}'
    response = _post(body, refresh_views.signature_for(body, SECRET))
    assert response.status_code == 202
    assert len(queued) == 1


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head"])
def test_other_methods_are_405_and_queue_nothing(queued, method):
    response = getattr(Client(), method)("/hooks/refresh/")
    assert response.status_code == 405
    assert queued == []


def test_an_oversized_body_is_refused_without_a_500(queued, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b"x" * (64 * 1024)
    response = _post(
        body, refresh_views.signature_for(body, SECRET), "application/x-www-form-urlencoded"
    )
    # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE: 400, not a 500.
    assert response.status_code == 400
    assert queued == []


# --- The owner's "refresh now" (session + CSRF, never the hook's secret) -----------------


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("owner", is_staff=True)


@FUZZ
@given(slug=hostile.text, next_url=hostile.text)
def test_refresh_now_refuses_strangers_and_never_reflects(queued, slug, next_url):
    from urllib.parse import quote

    before = hostile.snapshot()
    response = Client().post(f"/accounts/{quote(slug, safe='')}/refresh/", {"next": next_url})
    hostile.assert_no_server_error(response)
    # Anonymous: sent to sign in (302) or no such URL (404); never queued.
    assert response.status_code in (302, 404)
    hostile.assert_not_reflected(response, next_url)
    assert queued == []
    assert hostile.snapshot() == before


def test_refresh_now_needs_the_csrf_token(queued, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/accounts/acme/refresh/").status_code == 403
    assert queued == []


def test_refresh_now_refuses_a_signed_in_non_owner(queued, settings):
    settings.OWNER_INSTAGRAM_USERNAMES = []
    client = Client()
    client.force_login(get_user_model().objects.create_user("visitor"))
    assert client.post("/accounts/acme/refresh/").status_code == 403
    assert queued == []


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
        "https:evil.example",
    ],
)
def test_refresh_now_never_redirects_off_site(queued, owner, next_url):
    client = Client()
    client.force_login(owner)
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        response = client.post("/accounts/acme/refresh/", {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert len(queued) == 1
