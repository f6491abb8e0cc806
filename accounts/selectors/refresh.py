"""Reads about the refresher: its heartbeat (more in the refresh engine)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import RefresherHeartbeat


def heartbeat_last() -> RefresherHeartbeat | None:
    return RefresherHeartbeat.objects.order_by("-ran_at").first()


def heartbeat_is_stale(*, now: datetime | None = None) -> bool:
    """True when the periodic job has not run for longer than twice its period."""
    now = now or timezone.now()
    last = heartbeat_last()
    limit = timedelta(seconds=2 * settings.REFRESH_TICK_SECONDS)
    return last is None or now - last.ran_at > limit
