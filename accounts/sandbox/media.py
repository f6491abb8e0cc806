"""The sandbox's media reads: ``[<version>/]me/media`` and ``<version>/<IG_ID>/media``
(where Instagram's ``paging.next`` points), shaped as docs/instagram.md section 6
says, and the CDN serving the pictures those answers link (cdn.py signs them)."""

import re
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.sandbox import catalog, cdn, tokens
from accounts.sandbox.failures import PAGING_MARK, endpoint
from accounts.sandbox.graph import graph_error, graph_json, token_or_error

DEFAULT_LIMIT = 25  # Graph's usual default (docs/instagram.md section 6: unconfirmed)
MAX_LIMIT = 100
OFFHOST = "https://collector.example.net"
_ASSET = re.compile(r"(?P<id>\d{1,24})(?P<suffix>_n\.jpg|_thumb\.jpg|_v\.mp4)")
_SUFFIX_KIND = {suffix: kind for kind, suffix in cdn.ASSET_SUFFIX.items()}


def _limit(raw: str | None) -> int:
    return max(1, min(MAX_LIMIT, int(raw if raw is not None else DEFAULT_LIMIT)))


def _page_url(request: HttpRequest, *, version: str, uid: str, **cursor: str) -> str:
    """``paging.next``/``previous`` as Graph builds them: the IG user id path, the
    token in the query, the fields and limit of the call, and the cursor."""
    path = reverse("sandbox:user-media", kwargs={"version": version, "ig_id": uid})
    query = {"access_token": request.GET.get("access_token", "")}
    if "fields" in request.GET:
        query["fields"] = request.GET["fields"]
    query["limit"] = str(_limit(request.GET.get("limit")))
    query.update(cursor)
    return request.build_absolute_uri(path) + "?" + urlencode(query)


def _tweak_next(request: HttpRequest, nxt: str | None) -> str | None:
    """The scripted hostile paging kinds (failures.failure_response marks the request)."""
    kind = request.META.get(PAGING_MARK)
    if kind == "paging_loop":
        return request.build_absolute_uri()  # this very page, again and again
    if kind == "paging_offhost" and nxt:
        parts = urlsplit(nxt)
        off = urlsplit(OFFHOST)
        return urlunsplit((off.scheme, off.netloc, parts.path, parts.query, ""))
    return nxt


@endpoint("media")
@require_http_methods(["GET", "OPTIONS"])
def media(request: HttpRequest, version: str | None = None, ig_id: str | None = None):
    tok = token_or_error(request)
    if isinstance(tok, HttpResponse):
        return tok
    uid = tokens.user_id_for(tok.username)
    if ig_id is not None and ig_id != uid:
        return graph_error(
            100,
            f"Unsupported get request. Object with ID '{ig_id}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation",
            error_type="GraphMethodException",
        )
    try:
        limit = _limit(request.GET.get("limit"))
    except ValueError:
        return graph_error(100, "(#100) Param limit must be an integer")
    try:
        # Without ``fields`` an edge answers ids only.
        fields = catalog.parse_fields(request.GET.get("fields") or "id")
    except ValueError:
        return graph_error(100, "Syntax error: unbalanced braces in the fields parameter")
    bad = catalog.unknown_fields(fields)
    if bad:
        return graph_error(
            100, f"(#100) Tried accessing nonexisting field ({bad[0]}) on node type (Media)"
        )
    chosen, newer, older = catalog.page(
        catalog.posts(tok.username),
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        limit=limit,
    )

    def url_for(record: dict, kind: str) -> str:
        return cdn.url(request, username=tok.username, media_id=record["id"], kind=kind)

    body: dict = {
        "data": [catalog.render(p, fields, username=tok.username, url_for=url_for) for p in chosen]
    }
    if chosen:
        first, last = catalog.cursor(chosen[0]), catalog.cursor(chosen[-1])
        paging: dict = {"cursors": {"before": first, "after": last}}
        version = version or "v21.0"
        nxt = _page_url(request, version=version, uid=uid, after=last) if older else None
        nxt = _tweak_next(request, nxt)
        if nxt:
            paging["next"] = nxt
        if newer:
            paging["previous"] = _page_url(request, version=version, uid=uid, before=first)
        body["paging"] = paging
    return graph_json(body)


@endpoint("cdn")
@require_http_methods(["GET", "HEAD", "OPTIONS"])
def cdn_asset(request: HttpRequest, username: str, name: str) -> HttpResponse:
    """One picture (or placeholder video) of a post while its URL is unexpired and
    the post exists; 403 like Instagram's CDN once the URL expired or was altered."""
    match = _ASSET.fullmatch(name)
    if not match:
        return HttpResponse("Not found", status=404, content_type="text/plain")
    problem = cdn.check(request.path, request.GET.get("oh", ""), request.GET.get("oe", ""))
    if problem:
        return HttpResponse(problem, status=403, content_type="text/plain")
    found = catalog.find(username, match["id"])
    kind = _SUFFIX_KIND[match["suffix"]]
    record = found and (found[1] or found[0])
    wanted = {"image": ("IMAGE",), "thumb": ("VIDEO",), "video": ("VIDEO",)}[kind]
    if not record or record["type"] not in wanted or (kind == "video" and not record.get("video")):
        return HttpResponse("Content not found", status=404, content_type="text/plain")
    if kind == "video":
        resp = HttpResponse(cdn.PLACEHOLDER_MP4, content_type="video/mp4")
    else:
        body = cdn.jpeg(f"{record['id']}{match['suffix']}", record["w"], record["h"])
        resp = HttpResponse(body, content_type="image/jpeg")
    resp["Cache-Control"] = "max-age=1209600, no-transform"
    return resp
