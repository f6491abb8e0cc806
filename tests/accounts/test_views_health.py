"""GET /healthz: database, broker, heartbeat, per-account health; 200 or 503; no token."""

import socket
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import OperationalError
from django.utils import timezone

from accounts.models import InstagramAccount, RefresherHeartbeat
from accounts.selectors import health as health_selectors
from tests.factories import make_account

pytestmark = pytest.mark.django_db
TOKEN = "IGAAtestLongLivedToken0000000001"


@pytest.fixture
def beating():
    return RefresherHeartbeat.objects.create(ran_at=timezone.now() - timedelta(minutes=3))


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    """The embedded broker (whatever REDIS_URL the run uses), with writable folders."""
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
    }
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    assert body["accounts"] == {"acme": "ok", "removed": "disconnected"}
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
    assert response.json()["accounts"] == {"sick": state}


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
        "period_seconds": 900,
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
