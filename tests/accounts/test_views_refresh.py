"""POST /hooks/refresh/ (HMAC-signed, for external schedulers) and the owner's
"refresh now" button."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from kombu.exceptions import OperationalError

from accounts.models import RefreshAttempt
from tests import instagram_fakes as fakes
from tests.accounts.refresh_support import refresh_calls, sign, token_of
from tests.factories import make_account

pytestmark = pytest.mark.django_db
SECRET = "hook-secret-0123456789"
HOOK = "/hooks/refresh/"


@pytest.fixture
def secret(settings):
    settings.WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.fixture
def queued():
    with mock.patch("accounts.tasks.refresh_account.delay") as delay:
        yield delay


def post(client, body=b'{"ts": 1767225600}', signature=None):
    headers = {} if signature is None else {"HTTP_X_TOKENAGENT_SIGNATURE": signature}
    return client.post(HOOK, data=body, content_type="application/json", **headers)


def test_signed_hook_queues_what_is_due(client, secret, queued):
    due = make_account(username="due_one", slug="due-one")
    make_account(username="fresh_one", slug="fresh-one", token_age=timedelta(hours=3))
    body = b'{"ts": 1767225600}'
    response = post(client, body, sign(body, secret))
    assert response.status_code == 202
    assert response.json() == {"queued": 1, "accounts": ["due-one"]}
    queued.assert_called_once_with(due.pk, "hook", False)


def test_bare_hex_signature_and_empty_body_are_accepted(client, secret, queued):
    make_account(username="due_one")
    response = post(client, b"", sign(b"", secret).removeprefix("sha256="))
    assert response.status_code == 202


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, sign(b"other body", SECRET), "md5=abc"],
    ids=["missing", "empty", "no-digest", "zeros", "other-body", "other-algo"],
)
def test_missing_or_wrong_signature_is_403_and_does_nothing(client, secret, queued, signature):
    make_account(username="due_one")
    response = post(client, signature=signature)
    assert response.status_code == 403
    queued.assert_not_called()
    assert not RefreshAttempt.objects.exists()


def test_without_a_configured_secret_the_hook_is_closed(client, settings, queued):
    settings.WEBHOOK_SECRET = ""
    make_account(username="due_one")
    assert post(client, b"", sign(b"", "")).status_code == 403
    queued.assert_not_called()


def test_hook_is_post_only_and_csrf_exempt(secret, queued):
    client = Client(enforce_csrf_checks=True)
    assert client.get(HOOK).status_code == 405
    body = b"{}"
    assert post(client, body, sign(body, secret)).status_code == 202


def test_hook_runs_the_refresh_through_the_worker_path(client, secret, ig, eager_celery):
    account = make_account(username="due_one")
    fakes.register_refresh(ig)
    body = b"{}"
    assert post(client, body, sign(body, secret)).status_code == 202
    assert len(refresh_calls(ig)) == 1
    attempt = RefreshAttempt.objects.get(account=account)
    assert (attempt.trigger, attempt.outcome) == ("hook", "success")


def test_broker_down_is_503(client, secret):
    make_account(username="due_one")
    with mock.patch(
        "accounts.tasks.refresh_account.delay", side_effect=OperationalError("refused")
    ):
        body = b"{}"
        response = post(client, body, sign(body, secret))
    assert response.status_code == 503


# --- Refresh now -----------------------------------------------------------------------------


def test_refresh_now_is_for_owners_only(client, account, queued):
    url = f"/accounts/{account.slug}/refresh/"
    response = client.post(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    stranger = get_user_model().objects.create_user("stranger", password="pw")
    client.force_login(stranger)
    assert client.post(url).status_code == 403
    queued.assert_not_called()


def test_refresh_now_queues_a_forced_refresh(staff_client, account, queued):
    response = staff_client.post(f"/accounts/{account.slug}/refresh/", {"next": "/somewhere/"})
    assert response.status_code == 302 and response["Location"] == "/somewhere/"
    queued.assert_called_once_with(account.pk, "manual", True)


def test_refresh_now_refuses_foreign_redirects(staff_client, account, queued):
    response = staff_client.post(
        f"/accounts/{account.slug}/refresh/", {"next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_refresh_now_needs_post_and_csrf(account, queued):
    user = get_user_model().objects.create_user("boss2", password="pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = f"/accounts/{account.slug}/refresh/"
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token
    queued.assert_not_called()


def test_refresh_now_unknown_account_is_404(staff_client, queued):
    assert staff_client.post("/accounts/nobody/refresh/").status_code == 404


def test_refresh_now_without_broker_refreshes_in_process(staff_client, account, ig):
    fakes.register_refresh(ig)
    with mock.patch(
        "accounts.tasks.refresh_account.delay", side_effect=OperationalError("refused")
    ):
        response = staff_client.post(f"/accounts/{account.slug}/refresh/", follow=True)
    assert response.status_code == 200
    assert token_of(account).value == fakes.REFRESHED_TOKEN
    attempt = RefreshAttempt.objects.get(account=account)
    assert (attempt.trigger, attempt.outcome) == ("manual", "success")


# --- The account page's partials ---------------------------------------------------------------


def test_refresh_partials_render_status_button_and_history(rf, account):
    from django.middleware.csrf import get_token
    from django.template.loader import render_to_string
    from django.utils import timezone

    from accounts.models import InstagramAccount, RefresherHeartbeat

    RefresherHeartbeat.objects.create(ran_at=timezone.now())
    RefreshAttempt.objects.create(
        account=account,
        outcome="invalid_token",
        ig_code=190,
        ig_subcode=463,
        message="Session has expired (code 190/463)",
    )
    InstagramAccount.objects.filter(pk=account.pk).update(
        last_error="Session has expired (code 190/463)", last_error_at=timezone.now()
    )
    account.refresh_from_db()
    request = rf.get("/accounts/acme/")
    get_token(request)
    html = render_to_string("accounts/_account_refresh.html", {"account": account}, request=request)
    assert 'action="/accounts/acme/refresh/"' in html
    assert "csrfmiddlewaretoken" in html and 'value="/accounts/acme/"' in html
    assert "Token expires" in html and "Next refresh" in html and "due now" in html
    assert "Session has expired" in html
    assert "last ran" in html and "not running" not in html
    assert "IGAAtestLongLivedToken" not in html
    history = render_to_string("accounts/_account_history.html", {"account": account})
    assert "Invalid token" in history and "190/463" in history


def test_refresh_partial_goes_red_when_the_refresher_stopped(account):
    from django.template.loader import render_to_string

    html = render_to_string("accounts/_account_refresh.html", {"account": account})
    assert "has never run" in html and "not running" in html
