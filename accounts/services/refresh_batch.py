"""Beat's refreshes in batches: many due accounts in one task, the database read and
written once per batch, Instagram called on a few threads at once.

Beat's tick fans its due accounts out ``REFRESH_BATCH_SIZE`` at a time
(:func:`accounts.services.refresher.refresh_queue_batches`). One batch:

1. claims its accounts in one transaction
   (:func:`~accounts.services.refresh_claim.accounts_refresh_claim`) and reads their
   tokens in one query; an account another refresh holds is left to it, one that is
   no longer due is given back;
2. calls Instagram for each on up to ``REFRESH_BATCH_THREADS`` threads, with no
   transaction open and no database work in those threads;
3. commits every success at once: the tokens (each compared with the version it
   started from, under row locks), the accounts, the history rows and the token
   cache's invalidation after the commit. A failure is settled as one refresh
   settles it (:mod:`accounts.services.refresh_outcomes`); the retryable ones are
   returned, for the task to retry each on its own with backoff.

The guarantees are one refresh's (:mod:`accounts.services.refresh`): the old token
stays stored and served until the new one commits, a newer token stored meanwhile
wins, and the claims are given back on every way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import instagram, token_cache
from accounts.crypto import InvalidToken
from accounts.models import AccessToken, InstagramAccount, RefreshAttempt
from accounts.refresh_policy import token_is_due
from accounts.services import refresh_outcomes
from accounts.services.refresh_claim import accounts_refresh_claim, accounts_refresh_release
from accounts.services.tokens import token_apply

Outcome = RefreshAttempt.Outcome
# Not attempts, so not in the history: someone else holds the account (or it is
# gone, or not active), or it is no longer due.
BUSY, NOT_DUE = "busy", "not_due"
TOKEN_FIELDS = ["ciphertext", "issued_at", "expires_at", "permissions", "version"]
TOKEN_FIELDS += ["refreshed_at", "updated_at"]


@dataclass
class BatchResult:
    """Each account's outcome (a history outcome, or BUSY / NOT_DUE), and the
    retryable failures for the caller to retry one by one."""

    outcomes: dict[int, str] = field(default_factory=dict)
    retry: list[tuple[int, instagram.InstagramError]] = field(default_factory=list)


@dataclass
class _Call:
    token: AccessToken
    current: str

    @property
    def account(self) -> InstagramAccount:
        return self.token.account


def token_refresh_batch(
    *,
    account_ids: Sequence[int],
    trigger: str = RefreshAttempt.Trigger.BEAT,
    now: datetime | None = None,
) -> BatchResult:
    """Refresh every due, active account of ``account_ids`` (a first attempt each).
    Never raises for one account's failure: each is settled and reported in the
    result."""
    now = now or timezone.now()
    result = BatchResult()
    claim, taken = accounts_refresh_claim(
        account_ids=account_ids, now=now, statuses=[InstagramAccount.Status.ACTIVE]
    )
    result.outcomes.update(dict.fromkeys(set(account_ids) - set(taken), BUSY))
    if not taken:
        return result
    try:
        calls = _due_calls(taken, trigger=trigger, now=now, result=result)
        answers = _ask_instagram(calls)
        granted: list[tuple[_Call, instagram.TokenGrant]] = []
        for call, answer in zip(calls, answers, strict=True):
            if isinstance(answer, instagram.TokenGrant):
                granted.append((call, answer))
            else:
                _settle_failure(call, answer, trigger=trigger, now=now, result=result)
        if granted:
            _commit_successes(granted, trigger=trigger, now=now, result=result)
    finally:
        # Successes gave theirs back in their commit; this releases the rest, on
        # every way out (a database error, a time limit).
        accounts_refresh_release(account_ids=taken, claim=claim)
    return result


def _due_calls(
    taken: list[int], *, trigger: str, now: datetime, result: BatchResult
) -> list[_Call]:
    """The claimed accounts' tokens, read in one query under the claim (another
    refresh may have finished a moment ago): those still due, decrypted."""
    tokens = AccessToken.objects.select_related("account").filter(account_id__in=taken)
    by_account = {token.account_id: token for token in tokens}
    calls = []
    for account_id in taken:
        token = by_account.get(account_id)
        if token is None:
            account = InstagramAccount.objects.filter(pk=account_id).first()
            if account is not None:
                result.outcomes[account_id] = refresh_outcomes.skip_attempt(
                    account=account,
                    trigger=trigger,
                    now=now,
                    message=refresh_outcomes.NO_TOKEN,
                    record=True,
                ).outcome
            continue
        if not token_is_due(token=token, account=token.account, now=now):
            result.outcomes[account_id] = NOT_DUE
            continue
        try:
            calls.append(_Call(token=token, current=token.value))
        except InvalidToken as exc:
            result.outcomes[account_id] = refresh_outcomes.settle_permanent(
                account=token.account,
                trigger=trigger,
                now=now,
                attempt=1,
                error=refresh_outcomes.undecryptable(exc),
            ).outcome
    return calls


def _refresh_one(current: str) -> instagram.TokenGrant | instagram.InstagramError:
    try:
        return instagram.refresh_long_lived(access_token=current)
    except instagram.InstagramError as exc:
        return exc


def _ask_instagram(calls: list[_Call]) -> list[instagram.TokenGrant | instagram.InstagramError]:
    """Instagram's answer for each call, in order, ``REFRESH_BATCH_THREADS`` at a time.
    Anything but an Instagram error (a bug) propagates and fails the batch."""
    tokens = [call.current for call in calls]
    workers = min(len(tokens), settings.REFRESH_BATCH_THREADS)
    if workers <= 1:
        return [_refresh_one(token) for token in tokens]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        return list(pool.map(_refresh_one, tokens))


def _settle_failure(
    call: _Call,
    error: instagram.InstagramError,
    *,
    trigger: str,
    now: datetime,
    result: BatchResult,
) -> None:
    account = call.account
    settled = refresh_outcomes.settle_failure(
        account=account, trigger=trigger, now=now, attempt=1, error=error
    )
    result.outcomes[account.pk] = settled.outcome
    if refresh_outcomes.is_retryable(error):
        result.retry.append((account.pk, error))


def _commit_successes(
    granted: list[tuple[_Call, instagram.TokenGrant]],
    *,
    trigger: str,
    now: datetime,
    result: BatchResult,
) -> None:
    """Store every new token whose row still holds the version its refresh started
    from, and mark those accounts refreshed: one transaction, a handful of
    statements however many accounts."""
    stamp = timezone.now()
    stored: list[tuple[_Call, AccessToken, instagram.TokenGrant]] = []
    lost: list[_Call] = []
    with transaction.atomic():
        locked = AccessToken.objects.select_for_update().filter(
            pk__in=[call.token.pk for call, _ in granted]
        )
        rows = {row.pk: row for row in locked}
        for call, grant in granted:
            row = rows.get(call.token.pk)
            if row is None or row.version != call.token.version:
                lost.append(call)  # a reconnect stored a newer token meanwhile: it wins
                continue
            token_apply(
                row,
                access_token=grant.access_token,
                expires_at=grant.expires_at,
                issued_at=stamp,
                permissions=grant.permissions,
                refreshed_at=stamp,
            )
            row.updated_at = stamp
            stored.append((call, row, grant))
        if stored:
            AccessToken.objects.bulk_update([row for _, row, _ in stored], TOKEN_FIELDS)
            InstagramAccount.objects.filter(pk__in=[c.account.pk for c, _, _ in stored]).update(
                status=InstagramAccount.Status.ACTIVE,
                last_error="",
                last_error_at=None,
                refresh_locked_until=None,
                updated_at=stamp,
            )
            RefreshAttempt.objects.bulk_create(
                [
                    refresh_outcomes.attempt_build(
                        account=call.account,
                        outcome=Outcome.SUCCESS,
                        trigger=trigger,
                        started_at=now,
                        attempt=1,
                        message=refresh_outcomes.success_message(grant),
                    )
                    for call, _, grant in stored
                ]
            )
            for call, _, _ in stored:
                refresh_outcomes.success_clear_alerts(
                    account=call.account,
                    had_error=bool(call.account.last_error),
                    old_expires_at=call.token.expires_at,
                    now=now,
                )
            # Queryset writes send no signals: the served entries go after the commit.
            token_cache.invalidate_on_commit(call.account for call, _, _ in stored)
    for call in lost:
        result.outcomes[call.account.pk] = refresh_outcomes.skip_attempt(
            account=call.account,
            trigger=trigger,
            now=now,
            message=refresh_outcomes.NEWER_TOKEN_KEPT,
            record=True,
        ).outcome
    for call, _, grant in stored:
        result.outcomes[call.account.pk] = Outcome.SUCCESS
        refresh_outcomes.log_refreshed(call.account, grant)
