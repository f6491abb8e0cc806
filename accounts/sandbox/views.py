"""The sandbox Instagram's login and profile endpoints: the authorization window
(www), the code exchange (api), the long-lived token and its refresh, ``/me``
(graph) and the placeholder pictures it links. ``me/media`` and the CDN are in
media.py, the scripted failures in failures.py, the control API in control.py.

Paths mirror the real hosts under one prefix: ``oauth/authorize`` (www),
``oauth/access_token`` (api), ``access_token``, ``refresh_access_token``,
``<version>/me`` (graph)."""

import time
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.sandbox import catalog, state, tokens
from accounts.sandbox.failures import endpoint, play
from accounts.sandbox.graph import flat_error, graph_error, graph_json, token_or_error

REQUIRED_SCOPE = "instagram_business_basic"
PRESET_USERS = ("acme_bakery", "second_shop", "corner_cafe")


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
def authorize(request: HttpRequest) -> HttpResponseBase:
    params = request.GET if request.method == "GET" else request.POST
    if request.method == "GET":
        # Showing the window is the call scripted failures and delays apply to.
        failed = play("authorize", request)
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
        return graph_json(
            {"data": [{"access_token": token, "user_id": user_id, "permissions": REQUIRED_SCOPE}]}
        )
    return graph_json(
        {"access_token": token, "user_id": int(user_id), "permissions": [REQUIRED_SCOPE]}
    )


@endpoint("long_lived")
@require_http_methods(["GET", "OPTIONS"])
def long_lived(request: HttpRequest) -> HttpResponse:
    if request.GET.get("grant_type") != "ig_exchange_token":
        return graph_error(100, "Invalid grant_type: must be ig_exchange_token")
    if not request.GET.get("client_secret"):
        return graph_error(100, "Missing client_secret")
    tok = token_or_error(request, kind="short")
    if isinstance(tok, HttpResponse):
        return tok
    new = tokens.mint(username=tok.username, kind="long")
    return graph_json(
        {"access_token": new, "token_type": "bearer", "expires_in": tokens.LONG_LIFETIME - 56}
    )


@endpoint("refresh")
def refresh(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return graph_error(
            100, f"Unsupported request - method type: {(request.method or '').lower()}"
        )
    if request.GET.get("grant_type") != "ig_refresh_token":
        return graph_error(100, "Invalid grant_type: must be ig_refresh_token")
    tok = token_or_error(request, kind="long")
    if isinstance(tok, HttpResponse):
        return tok
    if time.time() - tok.issued_at < 24 * 3600:
        return graph_error(100, "The access token must be at least 24 hours old to be refreshed.")
    new = tokens.mint(username=tok.username, kind="long")
    return graph_json(
        {"access_token": new, "token_type": "bearer", "expires_in": tokens.LONG_LIFETIME - 56}
    )


# --- Graph reads ---------------------------------------------------------------------------


@endpoint("me")
@require_http_methods(["GET", "OPTIONS"])
def me(request: HttpRequest, version: str | None = None) -> HttpResponse:
    tok = token_or_error(request)
    if isinstance(tok, HttpResponse):
        return tok
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
        return graph_json({"data": [body]})
    return graph_json(body)


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
