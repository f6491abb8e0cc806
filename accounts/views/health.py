"""``GET /healthz``: can the agent keep tokens alive and feeds fresh? For uptime monitors.

JSON, never a token::

    {"status": "ok" | "degraded", "database": "ok" | "down", "broker": "ok" | "down",
     "heartbeat": {"last_run": iso | null, "age_seconds": n | null,
                   "period_seconds": n, "stale": bool},
     "accounts": {"ok": n, "expiring": n, "needs_reconnect": n, "disconnected": n},
     "feeds": {"feeds": n, "fresh": n, "stale": n, "never_synced": n, "alerting": n,
               "oldest_synced_at": iso | null,
               "per_account": {"<slug>": {"state": "fresh" | "stale" | "never_synced",
                               "updated_at": iso | null, "age_seconds": n | null,
                               "posts": n, "alerting": bool}}},
     "per_account": {"<slug>": "ok" | "expiring" | ...}}

``feeds`` counts the feeds of active accounts (a feed that never synced is stale
too); ``alerting`` ones have gone without a good sync for FEED_STALE_ALERT_PERIODS
periods. Both ``per_account`` objects only for a signed-in owner or a request carrying
``Authorization: Bearer <HEALTHZ_TOKEN>``: anyone else learns how many accounts
are in each state, never which accounts exist (their slugs are the token URLs).
A missing, wrong or malformed bearer gets the public answer, not an error.

200 when the database and broker answer, the refresher ran within twice its
period, no account is ``expiring`` or ``needs_reconnect`` and no feed is
``alerting``; 503 otherwise (an expiring token means refreshing has failed for
weeks, an alerting feed that sites have shown a copy hours old: worth a page).
A ``disconnected`` account was removed on purpose and does not count.
A stale heartbeat also raises the deduplicated heartbeat-stopped alert here:
the periodic job cannot report its own death, the web process can.
"""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from accounts import alerts
from accounts.permissions import is_owner
from accounts.refresh_policy import UNHEALTHY
from accounts.selectors import feed_status as feed_selectors
from accounts.selectors import health as health_selectors
from accounts.selectors import refresh as refresh_selectors

logger = logging.getLogger(__name__)


def _bearer_is_valid(request: HttpRequest) -> bool:
    """``Authorization: Bearer <HEALTHZ_TOKEN>``, compared in constant time; never
    true while HEALTHZ_TOKEN is unset."""
    expected = settings.HEALTHZ_TOKEN or ""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip()
    if not expected or scheme.lower() != "bearer" or not credentials:
        return False
    return hmac.compare_digest(credentials.encode(), expected.encode())


def _may_see_accounts(request: HttpRequest) -> bool:
    return _bearer_is_valid(request) or is_owner(request.user)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    database = health_selectors.database_status()
    broker = health_selectors.broker_status()
    body: dict = {"status": "ok", "database": database, "broker": broker}
    healthy = database == "ok" and broker == "ok"
    if database == "ok":
        try:
            beat = refresh_selectors.heartbeat_status(now=now)
            accounts = refresh_selectors.accounts_health(now=now)
            feeds = feed_selectors.feed_health(now=now)
            if beat.stale:
                alerts.alerts_check_heartbeat(now=now)
            detail = _may_see_accounts(request)
            if detail:
                feeds["per_account"] = feed_selectors.feed_health_per_account(now=now)
        except DatabaseError:
            logger.exception("healthz could not read the database")
            connection.close()
            body["database"] = "down"
            healthy = False
        else:
            body["heartbeat"] = {
                "last_run": beat.last_run.isoformat() if beat.last_run else None,
                "age_seconds": beat.age_seconds,
                "period_seconds": beat.period_seconds,
                "stale": beat.stale,
            }
            body["accounts"] = refresh_selectors.health_counts(accounts.values())
            body["feeds"] = feeds
            if detail:
                body["per_account"] = accounts
            healthy = (
                healthy
                and not beat.stale
                and not any(s in UNHEALTHY for s in accounts.values())
                and not feeds["alerting"]
            )
    if not healthy:
        body["status"] = "degraded"
    return JsonResponse(body, status=200 if healthy else 503)
