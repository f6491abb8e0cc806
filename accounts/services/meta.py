"""Meta's callbacks (docs/instagram.md §10): verify a ``signed_request``, then
deauthorize (disconnect) or delete the data of the Instagram user it names."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
from datetime import UTC, datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import DataDeletionRequest, InstagramAccount
from accounts.services.accounts import account_disconnect, retry_on_race
from accounts.services.errors import ConnectError
from accounts.services.feed import feed_delete

logger = logging.getLogger(__name__)


class SignedRequestError(ConnectError):
    """A Meta ``signed_request`` that is missing, malformed, unsigned or forged."""


def _b64url_decode(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SignedRequestError("signed_request is not base64url") from None


def meta_signed_request_parse(*, signed_request: str | None, app_secret: str) -> dict:
    """Verify ``<sig>.<payload>`` (base64url, no padding): HMAC-SHA256 under the app
    secret over the payload segment exactly as received, compared in constant time;
    only ``HMAC-SHA256`` is accepted. Returns the payload with ``user_id`` as str
    and ``issued_at`` as an aware datetime (None when Meta sent none)."""
    if not app_secret:
        raise SignedRequestError("INSTAGRAM_APP_SECRET is not set; cannot verify")
    if not signed_request or not isinstance(signed_request, str):
        raise SignedRequestError("signed_request is missing")
    parts = signed_request.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise SignedRequestError("signed_request is not <signature>.<payload>")
    sig_segment, payload_segment = parts
    signature = _b64url_decode(sig_segment)
    try:
        message = payload_segment.encode("ascii")
    except UnicodeEncodeError:
        raise SignedRequestError("signed_request is not base64url") from None
    expected = hmac.new(app_secret.encode(), message, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise SignedRequestError("signed_request signature does not match")
    try:
        payload = json.loads(_b64url_decode(payload_segment))
    except (ValueError, UnicodeDecodeError):
        raise SignedRequestError("signed_request payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SignedRequestError("signed_request payload is not an object")
    if str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise SignedRequestError("signed_request uses an unsupported algorithm")
    user_id = payload.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or not str(user_id).strip():
        raise SignedRequestError("signed_request has no user_id")
    if "\x00" in str(user_id):  # PostgreSQL refuses NUL in a query (a 500 otherwise)
        raise SignedRequestError("signed_request has an invalid user_id")
    payload["user_id"] = str(user_id).strip()
    payload["issued_at"] = _issued_at(payload.get("issued_at"))
    return payload


def _issued_at(value: object) -> datetime | None:
    """Meta's ``issued_at`` (Unix seconds) as a datetime; refuse anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SignedRequestError("signed_request has an invalid issued_at")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SignedRequestError("signed_request has an invalid issued_at") from None


def _accounts_for_meta_user(user_id: str) -> QuerySet[InstagramAccount]:
    # Which of the two ids Meta sends is unconfirmed: match both.
    return InstagramAccount.objects.filter(Q(ig_user_id=user_id) | Q(app_scoped_id=user_id))


def _issued_before_last_connection(account: InstagramAccount, issued_at: datetime) -> bool:
    # issued_at has whole seconds: compare at that grain, so that a deauthorize
    # issued in the same second as the connection still counts.
    connected = (account.connected_at or account.created_at).replace(microsecond=0)
    return issued_at < connected


def account_deauthorize(*, ig_user_id: str, issued_at: datetime | None = None) -> int:
    """The person removed the app on Instagram: stop refreshing and serving, delete
    the token and the feed with its pictures (account_disconnect), mark the account
    disconnected. A request issued before the account
    was last connected is a replay (the person has connected it again since) and
    leaves it alone. Returns how many accounts were disconnected."""
    disconnected = 0
    for account in _accounts_for_meta_user(ig_user_id):
        if issued_at is not None and _issued_before_last_connection(account, issued_at):
            logger.warning(
                "deauthorize callback for %s ignored: issued before its last connection",
                account.slug,
            )
            continue
        account_disconnect(
            account=account,
            reason="The account removed this app on Instagram (deauthorized); "
            "connect it again to serve its feed.",
        )
        disconnected += 1
    logger.info("deauthorize callback: %d account(s) disconnected", disconnected)
    return disconnected


def account_data_delete(*, ig_user_id: str) -> DataDeletionRequest:
    """Meta's data-deletion request: delete the matching accounts with their tokens,
    history, feeds and mirrored pictures, and the sign-in users made for them (never
    staff), at once and in the request, then record
    the request for its public status page. Safe to repeat: once the data is
    gone a repeat deletes nothing and records one more request."""
    now = timezone.now()

    def write() -> DataDeletionRequest:
        accounts = list(_accounts_for_meta_user(ig_user_id).select_related("user"))
        users = [
            a.user
            for a in accounts
            if a.user is not None and not a.user.is_staff and not a.user.is_superuser
        ]
        for account in accounts:
            # The feed and its pictures first: the pictures belong to no account row,
            # and a cascade alone would leave them stored and served.
            feed_delete(account=account)
            account.delete()  # token and refresh history cascade; the cache is invalidated
        for user in users:
            user.delete()
        return DataDeletionRequest.objects.create(
            ig_user_id=ig_user_id[:64],
            received_at=now,
            completed_at=timezone.now(),
            accounts_deleted=len(accounts),
        )

    # One transaction (retried when a feed sync raced it): all of it or nothing.
    request = retry_on_race(write)
    logger.info(
        "data deletion %s: %d account(s) deleted",
        request.confirmation_code,
        request.accounts_deleted,
    )
    return request
