"""Meta's deauthorize and data-deletion callbacks through Django's test client:
verified signed_request, effects, answers, the status page, and bad input."""

import pytest
from django.test import Client

from accounts.models import AccessToken, DataDeletionRequest, InstagramAccount
from tests.instagram_fakes import meta_post, signed_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]

SECRET = "test-app-secret"
DEAUTHORIZE = "/instagram/deauthorize/"
DELETION = "/instagram/data-deletion/"


def test_deauthorize_stops_refreshing_and_deletes_the_token(cafe):
    response = meta_post(
        DEAUTHORIZE, signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"})
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "accounts": 1}
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.DISCONNECTED
    assert not AccessToken.objects.exists()
    assert Client().get("/token/cafe.json").status_code != 200


def test_deauthorize_matches_the_app_scoped_id_as_a_number(cafe):
    response = meta_post(DEAUTHORIZE, signed_request({"algorithm": "HMAC-SHA256", "user_id": 999}))
    assert response.status_code == 200
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.DISCONNECTED


def test_deauthorize_for_an_unknown_user_is_acknowledged(cafe):
    response = meta_post(DEAUTHORIZE, signed_request({"algorithm": "HMAC-SHA256", "user_id": "5"}))
    assert response.status_code == 200 and response.json()["accounts"] == 0
    assert AccessToken.objects.count() == 1


def test_data_deletion_deletes_and_answers_url_and_confirmation_code(cafe, settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    response = Client(enforce_csrf_checks=True).post(
        DELETION,
        {"signed_request": signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"})},
        HTTP_HOST="agent.example.com",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "confirmation_code"}
    code = body["confirmation_code"]
    assert body["url"] == f"https://agent.example.com/instagram/data-deletion/{code}/"
    assert not InstagramAccount.objects.exists() and not AccessToken.objects.exists()
    deletion = DataDeletionRequest.objects.get(confirmation_code=code)
    assert deletion.accounts_deleted == 1

    status = Client().get(f"/instagram/data-deletion/{code}/", HTTP_HOST="agent.example.com")
    assert status.status_code == 200
    assert code.encode() in status.content and b"Completed" in status.content
    assert b"cafe_shop" not in status.content and b"111" not in status.content


def test_data_deletion_status_for_an_unknown_code_is_404():
    assert Client().get("/instagram/data-deletion/nope/").status_code == 404


@pytest.mark.parametrize("path", [DEAUTHORIZE, DELETION])
@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}, secret="not-the-secret"),
        signed_request({"algorithm": "HMAC-SHA1", "user_id": "111"}),
        signed_request({"algorithm": "HMAC-SHA256"}),
        # A valid signature glued to another payload.
        signed_request({"algorithm": "HMAC-SHA256", "user_id": "5"}).split(".")[0]
        + "."
        + signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}).split(".")[1],
    ],
)
def test_bad_signed_requests_are_400_and_change_nothing(cafe, path, value):
    client = Client(enforce_csrf_checks=True)
    response = client.post(path, {} if value is None else {"signed_request": value})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid signed_request"}
    cafe.refresh_from_db()
    assert cafe.status == InstagramAccount.Status.ACTIVE
    assert AccessToken.objects.count() == 1
    assert not DataDeletionRequest.objects.exists()


@pytest.mark.parametrize("path", [DEAUTHORIZE, DELETION])
def test_callbacks_are_post_only(cafe, path):
    assert Client().get(path).status_code == 405


def test_without_an_app_secret_nothing_is_verified_or_done(cafe, settings):
    value = signed_request({"algorithm": "HMAC-SHA256", "user_id": "111"}, secret="")
    settings.INSTAGRAM_APP_SECRET = ""
    assert meta_post(DEAUTHORIZE, value).status_code == 400
    assert AccessToken.objects.count() == 1
