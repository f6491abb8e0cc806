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
- Errors are classified by the typed client errors and settled by
  :mod:`accounts.services.refresh_outcomes`: permanent ones at once, retryable
  ones (transient, rate limit, malformed answer) recorded and re-raised so the
  Celery task can schedule the retry.

Beat's fan-out refreshes many accounts per task: :mod:`accounts.services.refresh_batch`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts import instagram
from accounts.crypto import InvalidToken
from accounts.models import AccessToken, InstagramAccount, RefreshAttempt
from accounts.refresh_policy import token_is_due, token_next_refresh_at
from accounts.services.refresh_claim import (
    account_refresh_claim,
    account_refresh_release,
    account_update,
)
from accounts.services.refresh_outcomes import (
    NEWER_TOKEN_KEPT,
    NO_TOKEN,
    is_retryable,
    log_refreshed,
    record_attempt,
    settle_failure,
    settle_permanent,
    skip_attempt,
    success_clear_alerts,
    success_message,
    undecryptable,
)
from accounts.services.tokens import token_store

Outcome = RefreshAttempt.Outcome
Trigger = RefreshAttempt.Trigger


class RefreshInProgress(Exception):  # noqa: N818 (a state, not a failure)
    """Another worker, the command or the hook holds this account's claim."""

    def __init__(self, account: InstagramAccount, locked_until: datetime | None) -> None:
        self.account_id = account.pk
        self.locked_until = locked_until
        super().__init__(f"a refresh of {account.slug} is already running")


# --- One refresh ---------------------------------------------------------------------------


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
            return skip_attempt(
                account=account,
                trigger=trigger,
                now=now,
                message="The account is disconnected; it is not refreshed.",
                record=force,
            )
        if account.status == InstagramAccount.Status.NEEDS_RECONNECT and not force:
            return skip_attempt(
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
        return skip_attempt(
            account=account,
            trigger=trigger,
            now=now,
            message=NO_TOKEN,
            record=True,
        )
    account = token.account
    if not force and not token_is_due(token=token, account=account, now=now):
        next_at = token_next_refresh_at(token=token, account=account)
        return skip_attempt(
            account=account,
            trigger=trigger,
            now=now,
            message=f"Not due (next refresh {next_at:%Y-%m-%d %H:%M} UTC).",
            record=False,
        )
    try:
        current = token.value
    except InvalidToken as exc:
        error = undecryptable(exc)
        return settle_permanent(
            account=account, trigger=trigger, now=now, attempt=attempt, error=error
        )

    try:
        grant = instagram.refresh_long_lived(access_token=current)
    except instagram.InstagramError as exc:
        settled = settle_failure(
            account=account, trigger=trigger, now=now, attempt=attempt, error=exc
        )
        if is_retryable(exc):
            raise
        return settled

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
            return skip_attempt(
                account=account,
                trigger=trigger,
                now=now,
                message=NEWER_TOKEN_KEPT,
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
        result = record_attempt(
            account=account,
            outcome=Outcome.SUCCESS,
            trigger=trigger,
            started_at=now,
            attempt=attempt,
            message=success_message(grant),
        )
        success_clear_alerts(
            account=account, had_error=had_error, old_expires_at=token.expires_at, now=now
        )
    log_refreshed(account, grant)
    return result
