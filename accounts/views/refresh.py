"""Triggers besides beat: the external scheduler's hook and the owner's button.

``POST /hooks/refresh/`` queues a refresh of every due account. It is for
external schedulers (cron, uptime pingers, Heroku Scheduler with curl) and is
authenticated by an HMAC-SHA256 of the raw request body under ``WEBHOOK_SECRET``
in ``X-Tokenagent-Signature: sha256=<hex>``. Without a configured secret, or with
a missing or wrong signature, it answers 403 and does nothing. A replayed
request can only queue what is due anyway, which is harmless.

``POST /accounts/<slug>/refresh/`` is the dashboard's "refresh now" (owners,
CSRF-protected): a forced refresh of one account, queued for the worker.
"""

import hashlib
import hmac
import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerOperationalError

from accounts import instagram
from accounts.models import InstagramAccount, RefreshAttempt
from accounts.permissions import owner_required
from accounts.selectors.refresh import accounts_due_for_refresh
from accounts.services.refresh import RefreshInProgress, token_refresh
from accounts.services.refresher import refresh_queue

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tokenagent-Signature"


def signature_for(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(*, body: bytes, header: str | None, secret: str) -> bool:
    """Constant-time check of ``sha256=<hex>`` (a bare hex digest is accepted too)."""
    if not secret or not header:
        return False
    header = header.strip()
    if not header.startswith("sha256="):
        header = "sha256=" + header
    return hmac.compare_digest(header.lower().encode(), signature_for(body, secret).encode())


@csrf_exempt
@require_POST
def refresh_hook(request: HttpRequest) -> JsonResponse:
    if not signature_is_valid(
        body=request.body,
        header=request.headers.get(SIGNATURE_HEADER),
        secret=settings.WEBHOOK_SECRET,
    ):
        logger.warning("refresh hook: missing or wrong signature, nothing done")
        return JsonResponse({"error": "invalid or missing signature"}, status=403)
    due = accounts_due_for_refresh()
    try:
        queued = refresh_queue(account_ids=[a.pk for a in due], trigger=RefreshAttempt.Trigger.HOOK)
    except BrokerOperationalError as exc:
        logger.error("refresh hook: the broker is unavailable: %s", exc)
        return JsonResponse({"error": "the task broker is unavailable"}, status=503)
    return JsonResponse({"queued": queued, "accounts": [a.slug for a in due]}, status=202)


def _back(request: HttpRequest, account: InstagramAccount) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("accounts:home")
    return HttpResponseRedirect(target)


@owner_required
@require_POST
def refresh_now(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_object_or_404(InstagramAccount, slug=slug)
    try:
        refresh_queue(account_ids=[account.pk], trigger=RefreshAttempt.Trigger.MANUAL, force=True)
    except BrokerOperationalError:
        # No worker can take it: one quick attempt here instead.
        logger.warning("refresh now: broker unavailable, refreshing %s in-process", slug)
        return _refresh_in_process(request, account)
    messages.info(
        request,
        f"Refresh of {account.slug} queued; the history below shows the result in a moment.",
    )
    return _back(request, account)


def _refresh_in_process(request: HttpRequest, account: InstagramAccount) -> HttpResponse:
    try:
        attempt = token_refresh(account=account, trigger=RefreshAttempt.Trigger.MANUAL, force=True)
    except RefreshInProgress:
        messages.info(request, f"{account.slug} is being refreshed right now.")
    except instagram.InstagramError as exc:
        messages.error(request, f"Refreshing {account.slug} failed: {exc.describe()}")
    else:
        level = (
            messages.SUCCESS
            if attempt.outcome == RefreshAttempt.Outcome.SUCCESS
            else messages.WARNING
        )
        messages.add_message(
            request, level, f"{account.slug}: {attempt.get_outcome_display()}. {attempt.message}"
        )
    return _back(request, account)
