"""GET /healthz: database, broker, heartbeat, account counts; 200 or 503; no token.
Per-account detail only for a signed-in owner or with the HEALTHZ_TOKEN bearer."""

import hmac
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import OperationalError
from django.utils import timezone

from accounts.models import InstagramAccount, RefresherHeartbeat
from accounts.selectors import health as health_selectors
from harness.processes import free_port
from tests.factories import make_account

pytestmark = pytest.mark.django_db
TOKEN = "IGAAtestLongLivedToken0000000001"
HEALTHZ_TOKEN = "healthz-bearer-0123456789abcdef"
NO_ACCOUNTS = {"ok": 0, "expiring": 0, "needs_reconnect": 0, "disconnected": 0}


@pytest.fixture
def beating():
    return RefresherHeartbeat.objects.create(ran_at=timezone.now() - timedelta(minutes=3))


def test_all_well_is_200(client, filesystem_broker, beating, account):
    make_account(username="removed_one", slug="removed", status="disconnected")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert body["heartbeat"]["stale"] is False
    assert body["heartbeat"]["age_seconds"] in range(170, 200)
    assert body["heartbeat"]["last_run"] == beating.ran_at.isoformat()
    assert body["accounts"] == {**NO_ACCOUNTS, "ok": 1, "disconnected": 1}
    assert "per_account" not in body
    assert TOKEN not in response.content.decode()


@pytest.mark.parametrize(
    ("change", "state"),
    [
        ({"status": "needs_reconnect"}, "needs_reconnect"),
        ({"expires_in": timedelta(days=5)}, "expiring"),
        ({"expires_in": -timedelta(days=1)}, "needs_reconnect"),
    ],
)
def test_an_unhealthy_account_is_503(client, filesystem_broker, beating, change, state):
    make_account(username="sick_one", slug="sick", **change)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["accounts"] == {**NO_ACCOUNTS, state: 1}


def test_stale_heartbeat_is_503_and_alerts_the_owner_once(client, filesystem_broker, settings):
    settings.ALERT_EMAIL = ["owner@example.com"]
    settings.REFRESH_TICK_SECONDS = 900
    make_account(username="old_one")
    InstagramAccount.objects.update(created_at=timezone.now() - timedelta(days=2))
    RefresherHeartbeat.objects.create(ran_at=timezone.now() - timedelta(minutes=31))
    for _ in range(3):
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["heartbeat"]["stale"] is True
    assert len(mail.outbox) == 1
    assert "refresher has stopped" in mail.outbox[0].subject


def test_never_ran_is_reported(client, filesystem_broker):
    body = client.get("/healthz").json()
    assert body["heartbeat"] == {
        "last_run": None,
        "age_seconds": None,
        "period_seconds": 300,  # the default tick: min(15 min, FEED_SYNC_SECONDS / 6)
        "stale": True,
    }


def test_redis_broker_down_is_503_and_fast(client, settings, beating):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "ok"


def test_missing_broker_folder_is_down(client, filesystem_broker, settings, beating):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(filesystem_broker / "nope"),
        "data_folder_out": str(filesystem_broker / "nope"),
    }
    assert client.get("/healthz").json()["broker"] == "down"


def test_database_down_is_503(client, filesystem_broker):
    with mock.patch.object(health_selectors, "connection") as conn:
        conn.cursor.side_effect = OperationalError("connection refused")
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body == {"status": "degraded", "database": "down", "broker": "ok"}


def test_only_get_and_head(client, filesystem_broker):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code in (200, 503)


@pytest.mark.redis
def test_real_redis_broker_is_ok(client, settings, beating):
    import os

    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis"):
        pytest.skip("REDIS_URL does not point at Redis")
    settings.CELERY_BROKER_URL = url
    assert client.get("/healthz").json()["broker"] == "ok"


# --- Who may see which account is which (issue 11) ------------------------------------------


@pytest.fixture
def named_accounts(filesystem_broker, beating):
    """Two accounts whose slug, username and ids differ, one of them unhealthy."""
    fine = make_account(username="secret_bakery", slug="hidden-slug", ig_user_id="17841499990001")
    sick = make_account(
        username="secret_studio",
        slug="other-hidden",
        ig_user_id="17841499990002",
        status="needs_reconnect",
    )
    return fine, sick


def names_in(text: str, accounts) -> list[str]:
    return [
        name
        for account in accounts
        for name in (account.slug, account.username, account.ig_user_id, account.app_scoped_id)
        if name in text
    ]


def test_public_healthz_names_no_account(client, named_accounts):
    response = client.get("/healthz")
    assert response.status_code == 503  # the status still tells a monitor something is wrong
    body = response.json()
    assert body["accounts"] == {**NO_ACCOUNTS, "ok": 1, "needs_reconnect": 1}
    assert "per_account" not in body
    assert names_in(response.content.decode(), named_accounts) == []
    for account in named_accounts:
        assert f'"{account.pk}"' not in response.content.decode()


def test_a_signed_in_owner_sees_each_account(client, named_accounts, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="boss", is_staff=True))
    body = client.get("/healthz").json()
    assert body["per_account"] == {"hidden-slug": "ok", "other-hidden": "needs_reconnect"}
    assert body["accounts"] == {**NO_ACCOUNTS, "ok": 1, "needs_reconnect": 1}


def test_a_signed_in_non_owner_gets_the_public_view(client, named_accounts, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="visitor"))
    response = client.get("/healthz")
    assert "per_account" not in response.json()
    assert names_in(response.content.decode(), named_accounts) == []


def test_the_healthz_token_as_bearer_sees_each_account(client, named_accounts, settings):
    settings.HEALTHZ_TOKEN = HEALTHZ_TOKEN
    with mock.patch("accounts.views.health.hmac.compare_digest", wraps=hmac.compare_digest) as cmp:
        response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {HEALTHZ_TOKEN}")
    assert cmp.called  # constant-time comparison
    assert response.status_code == 503
    assert response.json()["per_account"] == {
        "hidden-slug": "ok",
        "other-hidden": "needs_reconnect",
    }
    assert client.get("/healthz", HTTP_AUTHORIZATION=f"bearer {HEALTHZ_TOKEN}").json()[
        "per_account"
    ]


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {HEALTHZ_TOKEN}x",
        f"Bearer {HEALTHZ_TOKEN[:-1]}",
        "Bearer",
        "Bearer ",
        f"Basic {HEALTHZ_TOKEN}",
        HEALTHZ_TOKEN,
        "Bearer \u00e9t\u00e9",
        "Bearer " + "A" * 10000,
        "",
    ],
    ids=["longer", "shorter", "no-value", "blank", "basic", "no-scheme", "latin1", "huge", "empty"],
)
def test_a_wrong_or_malformed_bearer_gets_the_public_view(client, named_accounts, settings, header):
    settings.HEALTHZ_TOKEN = HEALTHZ_TOKEN
    response = client.get("/healthz", HTTP_AUTHORIZATION=header)
    assert response.status_code == 503  # the same answer as without a header: not an error
    assert "per_account" not in response.json()
    assert names_in(response.content.decode(), named_accounts) == []


@pytest.mark.parametrize("configured", ["", None])
def test_without_a_configured_healthz_token_no_bearer_opens_the_detail(
    client, named_accounts, settings, configured
):
    settings.HEALTHZ_TOKEN = configured
    for header in ("Bearer ", "Bearer None", "Bearer  ", "Bearer"):
        response = client.get("/healthz", HTTP_AUTHORIZATION=header)
        assert "per_account" not in response.json(), header
        assert names_in(response.content.decode(), named_accounts) == [], header
