"""The refresh engine: refresh one account safely and settle what went wrong.

When a token is due is :mod:`accounts.refresh_policy`'s decision; the periodic
job's housekeeping (heartbeat, pruning, fan-out) is :mod:`accounts.services.refresher`.

- One refresh per account at a time: a refresh claims the account
  (:mod:`accounts.services.refresh_claim`) and gives the claim back when done.
- No transaction is open during the HTTP call. The new token, its expiry, the
  account status, the history row and the release of the claim are committed
  together; until then the old token stays stored and served.
- Every write to an account goes through ``Model.save()``
  (:func:`~accounts.services.refresh_claim.account_update`), so the token cache's
  receivers (:mod:`accounts.token_cache`) drop the served entry after commit; only
  the claim, which nothing serves, is a bare conditional UPDATE.
- Errors are classified by the typed client errors. Permanent ones (invalid
  token, lost permission, configuration) are settled here; retryable ones
  (transient, rate limit, malformed answer) are recorded and re-raised so the
  Celery task can schedule the retry; :func:`token_refresh_give_up` settles
  them once the retries are spent.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts import alerts, instagram
from accounts.crypto import InvalidToken
from accounts.models import AccessToken, InstagramAccount, RefreshAttempt
from accounts.refresh_policy import (
    safety_window,
    token_is_due,
    token_next_refresh_at,
)
from accounts.services.refresh_claim import (
    account_refresh_claim,
    account_refresh_release,
    account_update,
)
from accounts.services.tokens import token_store
from tokenagent.redaction import redact

logger = logging.getLogger(__name__)

Outcome = RefreshAttempt.Outcome
Trigger = RefreshAttempt.Trigger


class RefreshInProgress(Exception):  # noqa: N818 (a state, not a failure)
    """Another worker, the command or the hook holds this account's claim."""

    def __init__(self, account: InstagramAccount, locked_until: datetime | None) -> None:
        self.account_id = account.pk
        self.locked_until = locked_until
        super().__init__(f"a refresh of {account.slug} is already running")


# --- One refresh ---------------------------------------------------------------------------


def _record(
    *,
    account: InstagramAccount,
    outcome: str,
    trigger: str,
    started_at: datetime,
    attempt: int,
    error: instagram.InstagramError | None = None,
    message: str = "",
) -> RefreshAttempt:
    return RefreshAttempt.objects.create(
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


def _skip(
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


def _set_error(
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


def token_refresh(
    *,
    account: InstagramAccount,
    trigger: str = Trigger.BEAT,
    force: bool = False,
    now: datetime | None = None,
    attempt: int = 1,
) -> RefreshAttempt:
    """Refresh ``account``'s token if it is due (or ``force``), safely.

    Returns the attempt (saved, except for the no-op "not due", which is not an
    attempt and is returned unsaved). Raises :class:`RefreshInProgress` when
    another refresh holds the claim, and re-raises retryable Instagram errors
    (:class:`~accounts.instagram.InstagramTransientError`,
    :class:`~accounts.instagram.InstagramMalformedResponseError`) after recording
    them, for the caller to retry or give up (:func:`token_refresh_give_up`).
    Permanent errors are settled here and returned as the attempt.
    """
    now = now or timezone.now()
    claimable = [InstagramAccount.Status.ACTIVE]
    if force:
        claimable.append(InstagramAccount.Status.NEEDS_RECONNECT)
    claim = account_refresh_claim(account=account, now=now, statuses=claimable)
    if claim is None:
        account.refresh_from_db()
        if account.status == InstagramAccount.Status.DISCONNECTED:
            return _skip(
                account=account,
                trigger=trigger,
                now=now,
                message="The account is disconnected; it is not refreshed.",
                record=force,
            )
        if account.status == InstagramAccount.Status.NEEDS_RECONNECT and not force:
            return _skip(
                account=account,
                trigger=trigger,
                now=now,
                message="The account needs to be reconnected.",
                record=False,
            )
        raise RefreshInProgress(account, account.refresh_locked_until)
    released = False
    try:
        result = _refresh_claimed(
            account=account, trigger=trigger, force=force, now=now, attempt=attempt, claim=claim
        )
        # A success gives the claim back inside its commit.
        released = result.outcome == Outcome.SUCCESS
        return result
    finally:
        # Every other way out: a skip, an error, SoftTimeLimitExceeded, a database failure.
        if not released:
            account_refresh_release(account=account, claim=claim)


def token_refresh_by_id(
    *, account_id: int, trigger: str = Trigger.BEAT, force: bool = False, attempt: int = 1
) -> RefreshAttempt | None:
    """:func:`token_refresh` for a queued task, which knows only the account's id
    (None when there is no such account). The claim needs nothing but the id and
    the account is read with its token under the claim anyway, so nothing is read
    before: the instance handed down is the id alone until one of those reads fills
    it in."""
    try:
        return token_refresh(
            account=InstagramAccount(pk=account_id), trigger=trigger, force=force, attempt=attempt
        )
    except InstagramAccount.DoesNotExist:  # refresh_from_db() after a claim that matched nothing
        return None


def _refresh_claimed(
    *,
    account: InstagramAccount,
    trigger: str,
    force: bool,
    now: datetime,
    attempt: int,
    claim: datetime,
) -> RefreshAttempt:
    # Re-read under the claim, account and token in one query: another refresh
    # may have finished a moment ago, and the caller's copy may be old.
    try:
        token = AccessToken.objects.select_related("account").get(account_id=account.pk)
    except AccessToken.DoesNotExist:
        return _skip(
            account=account,
            trigger=trigger,
            now=now,
            message="The account has no token; connect it again.",
            record=True,
        )
    account = token.account
    if not force and not token_is_due(token=token, account=account, now=now):
        next_at = token_next_refresh_at(token=token, account=account)
        return _skip(
            account=account,
            trigger=trigger,
            now=now,
            message=f"Not due (next refresh {next_at:%Y-%m-%d %H:%M} UTC).",
            record=False,
        )
    try:
        current = token.value
    except InvalidToken as exc:
        error = instagram.InstagramConfigurationError(
            f"The stored token cannot be decrypted ({type(exc).__name__}); "
            "check TOKEN_ENCRYPTION_KEY/SECRET_KEY."
        )
        return _settle_permanent(
            account=account, trigger=trigger, now=now, attempt=attempt, error=error
        )

    try:
        grant = instagram.refresh_long_lived(access_token=current)
    except instagram.InstagramTokenTooYoungError as exc:
        logger.info("refresh of %s skipped: Instagram says the token is too young", account.slug)
        return _record(
            account=account,
            outcome=Outcome.SKIPPED,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            error=exc,
        )
    except instagram.InstagramError as exc:
        if is_retryable(exc):
            logger.warning(
                "refresh of %s failed (%s, attempt %s): %s",
                account.slug,
                type(exc).__name__,
                attempt,
                exc.describe(),
            )
            with transaction.atomic():
                _record(
                    account=account,
                    outcome=outcome_for(exc),
                    trigger=trigger,
                    started_at=now,
                    attempt=attempt,
                    error=exc,
                )
                _set_error(account=account, error=exc)
            raise
        return _settle_permanent(
            account=account, trigger=trigger, now=now, attempt=attempt, error=exc
        )

    with transaction.atomic():
        stored = token_store(
            account=account,
            access_token=grant.access_token,
            expires_at=grant.expires_at,
            issued_at=timezone.now(),
            permissions=grant.permissions,
            refreshed=True,
            expected_version=token.version,
        )
        if stored is None:
            # A reconnect or another writer stored a newer token meanwhile: theirs wins.
            return _skip(
                account=account,
                trigger=trigger,
                now=now,
                message="A newer token was stored while this refresh ran; kept it.",
                record=True,
            )
        had_error = bool(account.last_error)
        account_update(
            account=account,
            status=InstagramAccount.Status.ACTIVE,
            last_error="",
            last_error_at=None,
            refresh_locked_until=None,
        )
        result = _record(
            account=account,
            outcome=Outcome.SUCCESS,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            message=f"Refreshed; expires {grant.expires_at:%Y-%m-%d %H:%M} UTC.",
        )
        if had_error or token.expires_at - now <= safety_window():
            # Only then can a failure or an expiring-soon alert be standing.
            alerts.alerts_clear(
                keys=[alerts.refresh_failed_key(account), alerts.expiring_key(account)]
            )
    logger.info("refreshed token of %s (expires %s)", account.slug, grant.expires_at.isoformat())
    return result


def _settle_permanent(
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
        result = _record(
            account=account,
            outcome=outcome,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            error=error,
        )
        if reconnect:
            _set_error(account=account, error=error, status=InstagramAccount.Status.NEEDS_RECONNECT)
        else:
            _set_error(account=account, error=error)
        alerts.alert_refresh_failed(account=account, error=error, needs_reconnect=reconnect)
    return result


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
        _set_error(account=account, error=error)
        alerts.alert_refresh_failed(
            account=account, error=error, needs_reconnect=False, attempts=attempts
        )
