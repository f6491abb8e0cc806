"""Scripted failures: the kinds the control API accepts, the answer each plays,
and the ``endpoint`` decorator that plays them (call counting, delays, CORS) in
front of every sandbox Graph endpoint (see README.md beside this file)."""

import json
import math
import re
import time
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from accounts.sandbox import cdn, state, tokens
from accounts.sandbox.graph import flat_error, graph_error, graph_json

_190_MESSAGES = {
    None: "Invalid OAuth access token - Cannot parse access token",
    458: "Error validating access token: The user has not authorized application.",
    459: "Error validating access token: You cannot access the app till you log in to "
    "www.instagram.com and follow the instructions given.",
    460: "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons.",
    463: "Error validating access token: Session has expired on Friday, 14-Mar-25 02:00:00 PDT. "
    "The current time is Saturday, 15-Mar-25 10:00:00 PDT.",
    464: "Error validating access token: Sessions for the user are not allowed because the "
    "user is not a confirmed user.",
    467: "Error validating access token: The access token is invalid.",
    492: "Error validating access token: The session is invalid.",
}


# Kinds that answer normally with a hostile paging.next (media.py reads the mark).
PAGING_KINDS = frozenset({"paging_loop", "paging_offhost"})
FAILURE_KINDS = frozenset(
    {
        "http500",
        "http503",
        "non_json",
        "empty_json",
        "error102",
        "rate_limit",
        "rate_limit_17",
        "transient1",
        "transient2",
        "permission10",
        "config3",
        "config100",
        "too_young",
        "invalid_code",
        "http403",
        "http404",
        "http429",
        "bad_json",
        *PAGING_KINDS,
        *cdn.BODY_KINDS,
    }
)
# Where a hostile paging kind marks the request for media.py (a WSGI environ key).
PAGING_MARK = "sandbox.paging"
MAX_SLOW_SECONDS = 600
_ERROR190 = re.compile(r"error190(?:_\d+)?")


def check_failure_kind(kind: object) -> str:
    """Refuse a kind the sandbox cannot play (a typo would otherwise be queued and
    surface later as an unexplained HTTP 500)."""
    if not isinstance(kind, str):
        raise ValueError("a failure kind is a string")
    if kind.startswith("slow:"):
        try:
            seconds = float(kind.split(":", 1)[1])
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= MAX_SLOW_SECONDS:
            raise ValueError(f"slow:<seconds> needs 0 to {MAX_SLOW_SECONDS} seconds")
        return kind
    if kind in FAILURE_KINDS or _ERROR190.fullmatch(kind):
        return kind
    raise ValueError(f"unknown failure kind {kind!r} (see accounts/sandbox/README.md)")


def failure_response(kind: str, request: HttpRequest) -> HttpResponseBase | None:
    """Build the scripted failure ``kind``; None means 'answer normally'."""
    if kind.startswith("slow:"):
        time.sleep(float(kind.split(":", 1)[1]))
        return None
    if kind == "http500":
        return HttpResponse(
            "<html><body>Internal Server Error</body></html>", status=500, content_type="text/html"
        )
    if kind == "http503":
        return HttpResponse("Service Unavailable", status=503, content_type="text/plain")
    if kind in ("http403", "http404"):
        return HttpResponse(f"HTTP {kind[4:]}", status=int(kind[4:]), content_type="text/plain")
    if kind == "http429":
        resp = HttpResponse("Too Many Requests", status=429, content_type="text/plain")
        resp["Retry-After"] = "120"
        return resp
    if kind == "bad_json":
        # Cut off mid-way, yet labelled JSON (a proxy or a dropped connection).
        return HttpResponse('{"data": [{"id": "1803', content_type="application/json")
    if kind in PAGING_KINDS:
        request.META[PAGING_MARK] = kind
        return None
    if kind in cdn.BODY_KINDS:
        return cdn.hostile_response(kind)
    if kind == "non_json":
        return HttpResponse(
            "<!DOCTYPE html><html><body>Sorry, something went wrong.</body></html>",
            content_type="text/html",
        )
    if kind == "empty_json":
        return graph_json({})
    if kind == "error102":
        return graph_error(102, "API Session: the session is invalid.")
    if kind.startswith("error190"):
        sub = int(kind.split("_", 1)[1]) if "_" in kind else None
        return graph_error(190, _190_MESSAGES.get(sub, _190_MESSAGES[None]), subcode=sub)
    if kind in ("rate_limit", "rate_limit_17"):
        code = 17 if kind == "rate_limit_17" else 4
        usage = {
            tokens.user_id_for("sandbox"): [
                {
                    "type": "instagram",
                    "call_count": 100,
                    "total_cputime": 12,
                    "total_time": 15,
                    "estimated_time_to_regain_access": 1,
                }
            ]
        }
        msg = "User request limit reached" if code == 17 else "Application request limit reached"
        return graph_error(code, msg, headers={"X-Business-Use-Case-Usage": json.dumps(usage)})
    if kind == "transient1":
        return graph_error(1, "An unknown error occurred", status=500)
    if kind == "transient2":
        return graph_error(
            2,
            "An unexpected error has occurred. Please retry your request later.",
            status=503,
            is_transient=True,
        )
    if kind == "permission10":
        return graph_error(10, "Application does not have permission for this action")
    if kind == "config3":
        return graph_error(3, "Application does not have the capability to make this API call.")
    if kind == "config100":
        return graph_error(100, "Unsupported request - method type: get")
    if kind == "too_young":
        return graph_error(100, "The access token must be at least 24 hours old to be refreshed.")
    if kind == "invalid_code":
        return flat_error("Matching code was not found or was already used")
    return HttpResponse(
        f"unknown sandbox failure kind {kind!r}", status=500, content_type="text/plain"
    )


def play(name: str, request: HttpRequest) -> HttpResponseBase | None:
    """Count and record the call, apply the configured delay, and return the scripted
    failure to answer with, if any."""
    state.count_call(name)
    state.record_request(name, request)
    delay = state.delay_for(name)
    if delay:
        time.sleep(delay)
    kind = state.next_failure(name)
    return failure_response(kind, request) if kind else None


def endpoint(name: str) -> Callable:
    """Answer CORS preflights; otherwise play the call (see play), then the view.
    Every answer, scripted failures and 405s included, carries
    ``Access-Control-Allow-Origin: *`` so a browser client can read it."""

    def deco(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
            if request.method == "OPTIONS":
                preflight = HttpResponse(status=204)
                preflight["Access-Control-Allow-Origin"] = "*"
                preflight["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                preflight["Access-Control-Allow-Headers"] = "Content-Type"
                return preflight
            resp = play(name, request) or view(request, *args, **kwargs)
            if "Access-Control-Allow-Origin" not in resp:
                resp["Access-Control-Allow-Origin"] = "*"
            return resp

        return csrf_exempt(wrapper)

    return deco
