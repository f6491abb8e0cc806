"""The sandbox Instagram's control API (tests, benchmarks, curious users): queue
failures, set modes, delays and the response shape, mint and revoke tokens, change
a user's posts and the CDN URL lifetime, read the call counters and the journal.
README.md beside this file lists every call."""

import json
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.sandbox import catalog, cdn, state, tokens
from accounts.sandbox.failures import MAX_SLOW_SECONDS, check_failure_kind


def _json_body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _endpoint_name(data: dict) -> str:
    name = data.get("endpoint", "*")
    if name not in (*state.ENDPOINTS, "*"):
        raise ValueError(f"endpoint must be one of {', '.join(state.ENDPOINTS)} or *")
    return name


# Changes to a user's posts and to the CDN (catalog.py, cdn.py).
_CATALOG_ACTIONS = {
    "feed": catalog.set_count,
    "post": catalog.add_post,
    "delete_post": catalog.delete_post,
    "caption": catalog.set_caption,
    "cdn": cdn.set_ttl,
}


@csrf_exempt
@require_http_methods(["POST"])
def control(request: HttpRequest, action: str) -> HttpResponse:
    data = _json_body(request)
    try:
        if action == "reset":
            state.reset()
        elif action == "fail":
            failures = data.get("failures") or []
            if not isinstance(failures, list):
                raise ValueError("failures must be a list of failure kinds")
            state.queue_failures(_endpoint_name(data), [check_failure_kind(f) for f in failures])
        elif action == "mode":
            failure = data.get("failure")
            state.set_mode(_endpoint_name(data), failure and check_failure_kind(failure))
        elif action == "delay":
            seconds = float(data.get("seconds", 0))
            if not 0 <= seconds <= MAX_SLOW_SECONDS:  # also refuses NaN
                raise ValueError(f"seconds must be 0 to {MAX_SLOW_SECONDS}")
            state.set_delay(_endpoint_name(data), seconds)
        elif action == "shape":
            state.set_shape(str(data.get("shape")))
        elif action in _CATALOG_ACTIONS:
            return JsonResponse(_CATALOG_ACTIONS[action](data))
        elif action == "revoke":
            state.revoke(str(data["username"]), time.time())
        elif action == "mint":
            username = str(data.get("username") or "acme_bakery")
            age = float(data.get("age_hours", 48)) * 3600
            life = float(data.get("expires_in_days", 60 - age / 86400)) * 86400 + age
            issued = time.time() - age
            token = tokens.mint(username=username, kind="long", issued_at=issued, lifetime=life)
            return JsonResponse(
                {
                    "access_token": token,
                    "user_id": tokens.user_id_for(username),
                    "id": tokens.app_scoped_id_for(username),
                    "username": username,
                    "issued_at": int(issued),
                    "expires_at": int(issued + life),
                }
            )
        else:
            return JsonResponse({"error": f"unknown control action {action!r}"}, status=404)
    except catalog.PostNotFound as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"ok": True})


def control_calls(request: HttpRequest) -> HttpResponse:
    return JsonResponse(state.calls())


def control_requests(request: HttpRequest) -> HttpResponse:
    """The journal: what each call sent, credentials as ``state.fingerprint`` values."""
    return JsonResponse({"requests": state.journal()})
