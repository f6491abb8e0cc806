"""Can the agent reach what it needs? Quick probes for ``/healthz`` (each answers
within about a second, so a dead Redis cannot hang the request)."""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from kombu import Connection
from kombu.exceptions import OperationalError as BrokerOperationalError

logger = logging.getLogger(__name__)

OK = "ok"
DOWN = "down"
PROBE_TIMEOUT = 1.0


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("database probe failed: %s", exc)
        connection.close()
        return DOWN
    return OK


@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    kwargs: dict = {
        "socket_timeout": PROBE_TIMEOUT,
        "socket_connect_timeout": PROBE_TIMEOUT,
        "retry_on_timeout": False,
    }
    if url.startswith("rediss://"):
        # Heroku Key-Value Store: TLS with a self-signed certificate (deploy-conventions §2).
        kwargs["ssl_cert_reqs"] = None
    return redis.Redis.from_url(url, **kwargs)


def _redis_status(url: str) -> str:
    try:
        _redis_client(url).ping()
    except (redis.RedisError, OSError) as exc:
        logger.warning("broker probe failed: %s", type(exc).__name__)
        return DOWN
    return OK


def _filesystem_status() -> str:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    folders = {options.get("data_folder_in", "data_in"), options.get("data_folder_out", "data_out")}
    for folder in folders:
        if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            logger.warning("broker folder %s is missing or not writable", folder)
            return DOWN
    return OK


def _kombu_status(url: str) -> str:
    conn = Connection(
        url,
        connect_timeout=PROBE_TIMEOUT,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {},
    )
    try:
        # kombu-stubs say int; kombu adds it to time() (utils.functional.retry_over_time).
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT)  # type: ignore[arg-type]
    except (BrokerOperationalError, OSError) as exc:
        logger.warning("broker probe failed: %s", type(exc).__name__)
        return DOWN
    finally:
        conn.release()
    return OK


def broker_status() -> str:
    """``ok`` when the Celery broker in settings would accept a message now."""
    url = settings.CELERY_BROKER_URL or ""
    if url.startswith(("redis://", "rediss://")):
        return _redis_status(url)
    if url.startswith("filesystem://"):
        return _filesystem_status()
    if url.startswith("memory://"):
        return OK
    return _kombu_status(url)
