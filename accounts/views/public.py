"""The public token URLs: ``/token/<account>`` and ``.json`` (the JSON), ``.js`` (the
snippet), ``.txt`` (the token as plain text), and ``/token.json``, ``/token.js``,
``/token`` (plain text) for the default account, as in Token Agent.

Each view reads the request into a ``serving_policy.Visit``, makes one selector call
(``serving.served_token``: one cache get when warm) and turns the policy's answer
into a response. What is served is ``accounts.selectors.serving``; every HTTP rule
(status, CORS, the ``.js`` gate, caching headers, bodies) is ``accounts.serving_policy``.
"""

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import serving_policy
from accounts.selectors import serving

logger = logging.getLogger(__name__)


def _served(slug: str | None) -> serving.ServedToken | None:
    """The served entry, or None while the database is unreachable (cache miss)."""
    try:
        return serving.served_token(slug)
    except DatabaseError as exc:
        logger.warning("token endpoint: database unavailable (%s)", type(exc).__name__)
        return None


def visit_of(request: HttpRequest) -> serving_policy.Visit:
    """What the serving rules read from a request (the feed views use it too)."""
    return serving_policy.visit_of(
        request.META,
        method=request.method or "GET",
        const=request.GET.get("const"),
        limit=request.GET.get("limit"),
        after=request.GET.get("after"),
        agent_origin=f"{request.scheme}://{request.get_host()}",
    )


def response_of(answer: serving_policy.Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    if answer.content_type is None:
        del response["Content-Type"]
    for name, value in answer.headers:
        response[name] = value
    if answer.quiet:
        # Keeps django.request from logging each deliberate refusal or error.
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _serve(request: HttpRequest, slug: str | None, kind: str) -> HttpResponse:
    answer = serving_policy.token_answer(kind, visit_of(request), lambda: _served(slug))
    return response_of(answer)


@csrf_exempt
def token_json(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve(request, slug, "json")


@csrf_exempt
def token_plain(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve(request, slug, "plain")


@csrf_exempt
def token_js(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    return _serve(request, slug, "js")
