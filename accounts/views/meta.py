"""Meta's callbacks (docs/instagram.md §10): ``POST /instagram/deauthorize/`` and
``POST /instagram/data-deletion/``, plus the public status page a data-deletion
answer points to.

Meta posts a form field ``signed_request``; it is verified before anything else
(HMAC-SHA256 under the Instagram app secret, constant-time). Bad input is a 400
and changes nothing. These POSTs come from Meta's servers, so they are exempt
from CSRF (the signature is their authentication).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.models import DataDeletionRequest
from accounts.services.meta import (
    SignedRequestError,
    account_data_delete,
    account_deauthorize,
    meta_signed_request_parse,
)

logger = logging.getLogger(__name__)


def _verified(request: HttpRequest) -> dict | JsonResponse:
    try:
        return meta_signed_request_parse(
            signed_request=request.POST.get("signed_request"),
            app_secret=settings.INSTAGRAM_APP_SECRET,
        )
    except SignedRequestError as exc:
        logger.warning("Meta callback %s refused: %s", request.path, exc)
        return JsonResponse({"error": "invalid signed_request"}, status=400)


@csrf_exempt
@require_POST
def deauthorize(request: HttpRequest) -> JsonResponse:
    payload = _verified(request)
    if isinstance(payload, JsonResponse):
        return payload
    count = account_deauthorize(ig_user_id=payload["user_id"], issued_at=payload["issued_at"])
    return JsonResponse({"ok": True, "accounts": count})


@csrf_exempt
@require_POST
def data_deletion(request: HttpRequest) -> JsonResponse:
    payload = _verified(request)
    if isinstance(payload, JsonResponse):
        return payload
    deletion = account_data_delete(ig_user_id=payload["user_id"])
    status_url = request.build_absolute_uri(
        reverse("accounts:meta-data-deletion-status", args=[deletion.confirmation_code])
    )
    return JsonResponse({"url": status_url, "confirmation_code": deletion.confirmation_code})


@require_GET
def data_deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    """Public by confirmation code: what was deleted and when (no personal data)."""
    deletion = get_object_or_404(DataDeletionRequest, confirmation_code=code)
    return render(request, "accounts/data_deletion_status.html", {"deletion": deletion})
