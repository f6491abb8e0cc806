"""What the sandbox's Graph endpoints share: JSON answers any origin may read,
Graph's error shape, the code exchange's flat error (docs/instagram.md section 2)
and the access-token check."""

import secrets

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.sandbox import tokens


def graph_json(body: object, status: int = 200, headers: dict | None = None) -> HttpResponse:
    """``body`` as JSON that a browser client on any origin may read."""
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
    """Graph's ``{"error": {...}}`` answer; ``extra`` adds fields such as ``is_transient``."""
    err = {
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "Sbx" + secrets.token_hex(6),
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra)
    return graph_json({"error": err}, status=status, headers=headers)


def flat_error(message: str) -> HttpResponse:
    """The code-exchange endpoint's own error shape (section 2)."""
    return graph_json(
        {"error_type": "OAuthException", "code": 400, "error_message": message}, status=400
    )


def token_or_error(
    request: HttpRequest, *, kind: str | None = None
) -> tokens.SandboxToken | HttpResponse:
    """The call's ``access_token`` (of ``kind``, when given), or the error 190 to answer."""
    raw = request.GET.get("access_token", "")
    try:
        tok = tokens.verify(raw)
    except tokens.TokenProblem as exc:
        return graph_error(190, str(exc), subcode=exc.subcode)
    if kind and tok.kind != kind:
        return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
    return tok
