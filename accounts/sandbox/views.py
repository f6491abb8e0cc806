"""The sandbox Instagram: the endpoints of docs/instagram.md, faithfully shaped,
with scripted failures (see README.md beside this file).

Paths mirror the real hosts under one prefix: ``oauth/authorize`` (www),
``oauth/access_token`` (api), ``access_token``, ``refresh_access_token``,
``<version>/me`` (graph); ``<version>/me/media`` and the CDN are in media.py, the
control API in control.py."""

import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.sandbox import catalog, cdn, state, tokens

logger = logging.getLogger(__name__)

REQUIRED_SCOPE = "instagram_business_basic"
PRESET_USERS = ("acme_bakery", "second_shop", "corner_cafe")

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


# --- Response helpers ----------------------------------------------------------------


def _graph(body: object, status: int = 200, headers: dict | None = None) -> HttpResponse:
    resp = JsonResponse(body, status=status, safe=False)
    resp["Access-Control-Allow-Origin"] = "*"
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    status: int = 400,
    error_type: str = "OAuthException",
    headers: dict | None = None,
    **extra,
) -> HttpResponse:
    err = {
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "Sbx" + secrets.token_hex(6),
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra)
    return _graph({"error": err}, status=status, headers=headers)


def flat_error(message: str) -> HttpResponse:
    """The code-exchange endpoint's own error shape (section 2)."""
    return _graph(
        {"error_type": "OAuthException", "code": 400, "error_message": message}, status=400
    )


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


def failure_response(kind: str, request: HttpRequest) -> HttpResponse | None:
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
        request.sandbox_paging = kind
        return None
    if kind in cdn.BODY_KINDS:
        return cdn.hostile_response(kind)
    if kind == "non_json":
        return HttpResponse(
            "<!DOCTYPE html><html><body>Sorry, something went wrong.</body></html>",
            content_type="text/html",
        )
    if kind == "empty_json":
        return _graph({})
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


def _play(name: str, request: HttpRequest) -> HttpResponse | None:
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
    """Answer CORS preflights; otherwise play the call (see _play), then the view.
    Every answer, scripted failures and 405s included, carries
    ``Access-Control-Allow-Origin: *`` so a browser client can read it."""

    def deco(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "OPTIONS":
                resp = HttpResponse(status=204)
                resp["Access-Control-Allow-Origin"] = "*"
                resp["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                resp["Access-Control-Allow-Headers"] = "Content-Type"
                return resp
            resp = _play(name, request) or view(request, *args, **kwargs)
            if "Access-Control-Allow-Origin" not in resp:
                resp["Access-Control-Allow-Origin"] = "*"
            return resp

        return csrf_exempt(wrapper)

    return deco


def _token_or_error(request: HttpRequest, *, kind: str | None = None):
    raw = request.GET.get("access_token", "")
    try:
        tok = tokens.verify(raw)
    except tokens.TokenProblem as exc:
        return None, graph_error(190, str(exc), subcode=exc.subcode)
    if kind and tok.kind != kind:
        return None, graph_error(190, "Invalid OAuth access token - Cannot parse access token")
    return tok, None


# --- Authorization window (www.instagram.com) ---------------------------------------------


def _authorize_problem(params) -> str | None:
    if not params.get("client_id"):
        return "Invalid Request: Request parameters are invalid: Missing client_id"
    uri = params.get("redirect_uri", "")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or "#" in uri:
        # OAuth redirect URIs cannot carry a fragment (RFC 6749, 3.1.2).
        return "Invalid Request: Request parameters are invalid: Invalid redirect_uri"
    if params.get("response_type") != "code":
        return "Invalid Request: Request parameters are invalid: response_type must be code"
    scopes = params.get("scope", "").replace(" ", ",").split(",")
    if REQUIRED_SCOPE not in scopes:
        return f"Invalid Scopes: the scope must include {REQUIRED_SCOPE}"
    return None


def _redirect_back(uri: str, params: dict, fragment: str = "") -> HttpResponseRedirect:
    sep = "&" if urlsplit(uri).query else "?"
    return HttpResponseRedirect(f"{uri}{sep}{urlencode(params)}{fragment}")


@csrf_exempt  # a fake consent page: the answer only mints a code bound to redirect_uri
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    params = request.GET if request.method == "GET" else request.POST
    if request.method == "GET":
        # Showing the window is the call scripted failures and delays apply to.
        failed = _play("authorize", request)
        if failed is not None:
            return failed
    problem = _authorize_problem(params)
    if problem:
        return render(request, "sandbox/authorize_error.html", {"problem": problem}, status=400)
    if request.method == "GET":
        return render(
            request,
            "sandbox/authorize.html",
            {
                "params": {
                    k: params.get(k, "")
                    for k in ("client_id", "redirect_uri", "response_type", "scope", "state")
                },
                "presets": PRESET_USERS,
            },
        )
    back = {"state": params["state"]} if params.get("state") else {}
    if params.get("decision") != "allow":
        return _redirect_back(
            params["redirect_uri"],
            {
                "error": "access_denied",
                "error_reason": "user_denied",
                "error_description": "The user denied your request",
                **back,
            },
        )
    username = params.get("username", "").strip().lstrip("@")
    if (
        not username
        or len(username) > 30
        or not username.replace("_", "").replace(".", "").isalnum()
    ):
        return render(
            request,
            "sandbox/authorize_error.html",
            {"problem": "Enter a test username (letters, digits, _ and .)."},
            status=400,
        )
    code = tokens.mint_code(
        username=username, client_id=params["client_id"], redirect_uri=params["redirect_uri"]
    )
    return _redirect_back(params["redirect_uri"], {"code": code, **back}, fragment="#_")


# --- Token endpoints ---------------------------------------------------------------------


@endpoint("code_exchange")
@require_http_methods(["POST", "OPTIONS"])
def code_exchange(request: HttpRequest) -> HttpResponse:
    p = request.POST
    missing = [
        f
        for f in ("client_id", "client_secret", "grant_type", "redirect_uri", "code")
        if not p.get(f)
    ]
    if missing:
        return flat_error(f"Missing required parameter: {missing[0]}")
    if p["grant_type"] != "authorization_code":
        return flat_error("Unsupported grant_type")
    try:
        username = tokens.redeem_code(
            p["code"], client_id=p["client_id"], redirect_uri=p["redirect_uri"]
        )
    except ValueError as exc:
        return flat_error(str(exc))
    token = tokens.mint(username=username, kind="short")
    user_id = tokens.user_id_for(username)
    if state.shape() == "documented":
        return _graph(
            {"data": [{"access_token": token, "user_id": user_id, "permissions": REQUIRED_SCOPE}]}
        )
    return _graph({"access_token": token, "user_id": int(user_id), "permissions": [REQUIRED_SCOPE]})


@endpoint("long_lived")
@require_http_methods(["GET", "OPTIONS"])
def long_lived(request: HttpRequest) -> HttpResponse:
    if request.GET.get("grant_type") != "ig_exchange_token":
        return graph_error(100, "Invalid grant_type: must be ig_exchange_token")
    if not request.GET.get("client_secret"):
        return graph_error(100, "Missing client_secret")
    tok, err = _token_or_error(request, kind="short")
    if err:
        return err
    new = tokens.mint(username=tok.username, kind="long")
    return _graph(
        {"access_token": new, "token_type": "bearer", "expires_in": tokens.LONG_LIFETIME - 56}
    )


@endpoint("refresh")
def refresh(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return graph_error(100, f"Unsupported request - method type: {request.method.lower()}")
    if request.GET.get("grant_type") != "ig_refresh_token":
        return graph_error(100, "Invalid grant_type: must be ig_refresh_token")
    tok, err = _token_or_error(request, kind="long")
    if err:
        return err
    if time.time() - tok.issued_at < 24 * 3600:
        return graph_error(100, "The access token must be at least 24 hours old to be refreshed.")
    new = tokens.mint(username=tok.username, kind="long")
    return _graph(
        {"access_token": new, "token_type": "bearer", "expires_in": tokens.LONG_LIFETIME - 56}
    )


# --- Graph reads ---------------------------------------------------------------------------


@endpoint("me")
@require_http_methods(["GET", "OPTIONS"])
def me(request: HttpRequest, version: str | None = None) -> HttpResponse:
    tok, err = _token_or_error(request)
    if err:
        return err
    u = tok.username
    body = {
        "user_id": tokens.user_id_for(u),
        "username": u,
        "name": u.replace("_", " ").title(),
        "account_type": "BUSINESS",
        "profile_picture_url": _media_url(request, f"avatar-{u}"),
        "followers_count": 1234,
        "follows_count": 56,
        "media_count": len(catalog.posts(u)),
        "id": tokens.app_scoped_id_for(u),
    }
    requested = {f.strip() for f in request.GET.get("fields", "").split(",") if f.strip()}
    if requested:
        body = {k: v for k, v in body.items() if k in requested or k == "id"}
    if state.shape() == "documented":
        return _graph({"data": [body]})
    return _graph(body)


def _media_url(request: HttpRequest, name: str) -> str:
    from django.urls import reverse

    return request.build_absolute_uri(reverse("sandbox:media-image", args=[name]))


def media_image(request: HttpRequest, name: str) -> HttpResponse:
    """A locally served placeholder picture (SVG), so feeds render offline."""
    hue = int.from_bytes(name.encode()[:4].ljust(4, b"\0"), "big") % 360
    label = name.replace("<", "").replace(">", "").replace("&", "")[:40]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="320" viewBox="0 0 320 320">'
        f'<rect width="320" height="320" fill="hsl({hue},60%,70%)"/>'
        '<text x="160" y="150" font-size="22" text-anchor="middle" font-family="sans-serif">'
        "sandbox</text>"
        f'<text x="160" y="185" font-size="16" text-anchor="middle" font-family="sans-serif">'
        f"{label}</text></svg>"
    )
    resp = HttpResponse(svg, content_type="image/svg+xml")
    resp["Access-Control-Allow-Origin"] = "*"
    resp["Cache-Control"] = "public, max-age=3600"
    return resp
