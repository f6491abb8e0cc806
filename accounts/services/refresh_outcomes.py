"""What a refresh's outcome leaves behind, for one refresh (:mod:`accounts.services.refresh`)
and a batch (:mod:`accounts.services.refresh_batch`) alike: the history row, the
error kept on the account, the alerts, and which error class is which outcome.

Permanent errors (invalid token, lost permission, configuration) are settled here
at once; retryable ones (transient, rate limit, malformed answer) are recorded for
the caller to retry, and :func:`token_refresh_give_up` settles them once the
retries are spent.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts import alerts, instagram
from accounts.crypto import InvalidToken
from accounts.models import InstagramAccount, RefreshAttempt
from accounts.refresh_policy import safety_window
from accounts.services.refresh_claim import account_update
from tokenagent.redaction import redact

logger = logging.getLogger(__name__)

Outcome = RefreshAttempt.Outcome

NEWER_TOKEN_KEPT = "A newer token was stored while this refresh ran; kept it."  # noqa: S105
NO_TOKEN = "The account has no token; connect it again."  # noqa: S105


def undecryptable(exc: InvalidToken) -> instagram.InstagramConfigurationError:
    """A stored token this install cannot read: a configuration error, not Instagram's."""
    return instagram.InstagramConfigurationError(
        f"The stored token cannot be decrypted ({type(exc).__name__}); "
        "check TOKEN_ENCRYPTION_KEY/SECRET_KEY."
    )


def attempt_build(
    *,
    account: InstagramAccount,
    outcome: str,
    trigger: str,
    started_at: datetime,
    attempt: int,
    error: instagram.InstagramError | None = None,
    message: str = "",
) -> RefreshAttempt:
    """The history row of one attempt, unsaved (a batch creates its rows at once)."""
    return RefreshAttempt(
        account=account,
        outcome=outcome,
        trigger=trigger,
        started_at=started_at,
        finished_at=timezone.now(),
        attempt=attempt,
        error_class=type(error).__name__ if error else "",
        ig_code=error.code if error else None,
        ig_subcode=error.subcode if error else None,
        message=redact(error.describe() if error else message)[:2000],
    )


def record_attempt(**fields: Any) -> RefreshAttempt:
    attempt = attempt_build(**fields)
    attempt.save()
    return attempt


def skip_attempt(
    *, account: InstagramAccount, trigger: str, now: datetime, message: str, record: bool
) -> RefreshAttempt:
    attempt = RefreshAttempt(
        account=account,
        outcome=Outcome.SKIPPED,
        trigger=trigger,
        started_at=now,
        finished_at=now,
        message=message,
    )
    if record:
        attempt.save()
    return attempt


def set_error(
    *, account: InstagramAccount, error: instagram.InstagramError, **fields: object
) -> None:
    account_update(
        account=account,
        last_error=redact(error.describe())[:2000],
        last_error_at=timezone.now(),
        **fields,
    )


_CLASS_OUTCOMES: list[tuple[type[instagram.InstagramError], str]] = [
    (instagram.InstagramRateLimitError, Outcome.RATE_LIMITED),
    (instagram.InstagramTransientError, Outcome.TRANSIENT),
    (instagram.InstagramMalformedResponseError, Outcome.MALFORMED),
    (instagram.InstagramAuthError, Outcome.INVALID_TOKEN),
    (instagram.InstagramPermissionError, Outcome.PERMISSION),
    (instagram.InstagramConfigurationError, Outcome.CONFIGURATION),
    (instagram.InstagramError, Outcome.ERROR),
]


def outcome_for(error: instagram.InstagramError) -> str:
    for cls, outcome in _CLASS_OUTCOMES:
        if isinstance(error, cls):
            return outcome
    return Outcome.ERROR  # pragma: no cover (InstagramError is last in the table)


def is_retryable(error: instagram.InstagramError) -> bool:
    """Transient, rate-limited and malformed answers are worth another try."""
    return error.retryable


def success_message(grant: instagram.TokenGrant) -> str:
    return f"Refreshed; expires {grant.expires_at:%Y-%m-%d %H:%M} UTC."


def success_clear_alerts(
    *, account: InstagramAccount, had_error: bool, old_expires_at: datetime, now: datetime
) -> None:
    """After a success: clear the failure and expiring-soon alerts, if one can be
    standing (the account had an error, or its old token was inside the window)."""
    if had_error or old_expires_at - now <= safety_window():
        alerts.alerts_clear(keys=[alerts.refresh_failed_key(account), alerts.expiring_key(account)])


def settle_permanent(
    *,
    account: InstagramAccount,
    trigger: str,
    now: datetime,
    attempt: int,
    error: instagram.InstagramError,
) -> RefreshAttempt:
    """Invalid token / lost permission: needs_reconnect and alert now. Configuration
    and unknown errors: no retry, alert now, the account stays active."""
    outcome = outcome_for(error)
    reconnect = isinstance(error, instagram.InstagramAuthError | instagram.InstagramPermissionError)
    logger.warning(
        "refresh of %s failed for good (%s): %s", account.slug, outcome, error.describe()
    )
    with transaction.atomic():
        result = record_attempt(
            account=account,
            outcome=outcome,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            error=error,
        )
        if reconnect:
            set_error(account=account, error=error, status=InstagramAccount.Status.NEEDS_RECONNECT)
        else:
            set_error(account=account, error=error)
        alerts.alert_refresh_failed(account=account, error=error, needs_reconnect=reconnect)
    return result


def settle_retryable(
    *,
    account: InstagramAccount,
    trigger: str,
    now: datetime,
    attempt: int,
    error: instagram.InstagramError,
) -> RefreshAttempt:
    """A transient, rate-limited or malformed answer: record it and keep the error on
    the account; the caller schedules the retry."""
    logger.warning(
        "refresh of %s failed (%s, attempt %s): %s",
        account.slug,
        type(error).__name__,
        attempt,
        error.describe(),
    )
    with transaction.atomic():
        result = record_attempt(
            account=account,
            outcome=outcome_for(error),
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            error=error,
        )
        set_error(account=account, error=error)
    return result


def settle_failure(
    *,
    account: InstagramAccount,
    trigger: str,
    now: datetime,
    attempt: int,
    error: instagram.InstagramError,
) -> RefreshAttempt:
    """Instagram refused a refresh: a token too young is skipped quietly, a
    retryable error recorded (``error.retryable``: the caller retries), any other
    settled for good."""
    if isinstance(error, instagram.InstagramTokenTooYoungError):
        logger.info("refresh of %s skipped: Instagram says the token is too young", account.slug)
        return record_attempt(
            account=account,
            outcome=Outcome.SKIPPED,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            error=error,
        )
    settle = settle_retryable if is_retryable(error) else settle_permanent
    return settle(account=account, trigger=trigger, now=now, attempt=attempt, error=error)


def log_refreshed(account: InstagramAccount, grant: instagram.TokenGrant) -> None:
    logger.info("refreshed token of %s (expires %s)", account.slug, grant.expires_at.isoformat())


def token_refresh_give_up(
    *, account: InstagramAccount, error: instagram.InstagramError, attempts: int
) -> None:
    """The retries for a retryable error are spent: tell the owner (once).

    The account stays active and keeps its token; beat tries again after
    ``REFRESH_FAILURE_COOLDOWN_SECONDS``."""
    logger.error(
        "refresh of %s failed for good after %s attempts: %s",
        account.slug,
        attempts,
        error.describe(),
    )
    with transaction.atomic():
        set_error(account=account, error=error)
        alerts.alert_refresh_failed(
            account=account, error=error, needs_reconnect=False, attempts=attempts
        )
