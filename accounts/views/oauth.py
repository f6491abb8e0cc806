"""Instagram Login: ``GET /login/``, ``GET /oauth/instagram/callback/``, ``POST /logout/``.

The one callback serves three flows, told apart by the server-side state: the
owner signing in, a signed-in owner connecting another account, and a client
connecting through an invite. ``accounts.services.oauth_callback`` does the
checks and the write; this module turns its outcome into a redirect and its
refusals into a page saying what happened and what to do (texts in
``accounts/flow_messages.py``), with status 400 (403 for a refused sign-in).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts import instagram
from accounts.flow_messages import FAILURES, SETUP_KINDS
from accounts.models import Invite, OAuthState
from accounts.oauth import oauth_redirect_uri, oauth_state_create
from accounts.permissions import is_owner
from accounts.services.errors import RETRY_FLOW, RETRY_LOGIN, SignInError
from accounts.services.invites import invite_link_token
from accounts.services.oauth_callback import CallbackOutcome, oauth_callback_complete

logger = logging.getLogger(__name__)

Purpose = OAuthState.Purpose
NEXT_SESSION_KEY = "tokenagent_next"
INVITE_THANKS_SESSION_KEY = "tokenagent_invite_connected"
BACKEND = "django.contrib.auth.backends.ModelBackend"
FAILURE_STATUS = 400


def _retry_url(state: OAuthState | None) -> str | None:
    """Where 'start again' leads for the flow ``state`` belongs to."""
    if state is None or state.purpose == Purpose.SIGN_IN:
        return reverse("accounts:login")
    if state.purpose == Purpose.CONNECT:
        return reverse("accounts:home")
    if state.invite is not None and state.invite.used_at is None:
        return reverse("accounts:invite", args=[invite_link_token(invite=state.invite)])
    return None


def flow_failure(
    request: HttpRequest,
    kind: str,
    *,
    state: OAuthState | None = None,
    detail: str = "",
    username: str = "",
    status: int = FAILURE_STATUS,
    retry_url: str | None = "",
) -> HttpResponse:
    """The page for a failed sign-in / connect / invite step."""
    title, happened, todo = FAILURES[kind]
    logger.info("instagram login flow failed: %s%s", kind, f" ({detail})" if detail else "")
    context = {
        "kind": kind,
        "title": title,
        "happened": happened,
        "todo": todo,
        "detail": detail,
        "username": username,
        "retry_url": _retry_url(state) if retry_url == "" else retry_url,
        "show_setup": kind in SETUP_KINDS,
    }
    return render(request, "accounts/oauth_error.html", context, status=status)


def sign_in_failure(request: HttpRequest, error: SignInError) -> HttpResponse:
    """The page for a refusal raised by the services."""
    retry_urls: dict[str | None, str] = {RETRY_FLOW: "", RETRY_LOGIN: reverse("accounts:login")}
    retry_url = retry_urls.get(error.retry)
    return flow_failure(
        request,
        error.kind,
        state=error.state,
        detail=error.detail,
        username=error.username,
        status=error.status,
        retry_url=retry_url,
    )


def authorization_start(
    request: HttpRequest, *, purpose: str, user=None, invite: Invite | None = None
) -> HttpResponse:
    """Issue a state bound to this browser's session and send it to Instagram."""
    state = oauth_state_create(session=request.session, purpose=purpose, user=user, invite=invite)
    try:
        url = instagram.authorize_url(
            redirect_uri=oauth_redirect_uri(request=request), state=state.state
        )
    except ImproperlyConfigured:
        state.delete()
        return flow_failure(request, "not_configured", retry_url=None)
    return HttpResponseRedirect(url)


def _local(request: HttpRequest, target: str) -> str:
    """``target`` if it stays on this site, else ''."""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@require_GET
def login(request: HttpRequest) -> HttpResponse:
    """Sign-in = connect the owner's own account (PRODUCT.md)."""
    target = _local(request, request.GET.get("next", ""))
    if is_owner(request.user):
        return HttpResponseRedirect(target or reverse("accounts:home"))
    if target:
        request.session[NEXT_SESSION_KEY] = target
    return authorization_start(request, purpose=Purpose.SIGN_IN)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return HttpResponseRedirect(reverse("accounts:home"))


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    # Read before signing in: logging in may start a fresh session.
    target = request.session.get(NEXT_SESSION_KEY, "")
    try:
        outcome = oauth_callback_complete(
            session=request.session,
            params=request.GET,
            user=request.user,
            redirect_uri=oauth_redirect_uri(request=request),
            sign_in=lambda user: auth_login(request, user, backend=BACKEND),
        )
    except SignInError as exc:
        if exc.state is not None and exc.state.purpose == Purpose.SIGN_IN:
            request.session.pop(NEXT_SESSION_KEY, None)  # each sign-in uses its `next` once
        return sign_in_failure(request, exc)
    return _finished(request, outcome, target=target)


def _finished(request: HttpRequest, outcome: CallbackOutcome, *, target: str) -> HttpResponse:
    account, created = outcome.result.account, outcome.result.created
    if outcome.purpose == Purpose.SIGN_IN:
        request.session.pop(NEXT_SESSION_KEY, None)
        messages.success(
            request,
            f"Signed in as @{account.username}. "
            + (
                f"The account is connected and served as {account.slug}."
                if created
                else "Its token was renewed."
            ),
        )
        return HttpResponseRedirect(_local(request, target) or reverse("accounts:home"))
    if outcome.purpose == Purpose.CONNECT:
        messages.success(
            request,
            f"Connected @{account.username}, served as {account.slug}."
            if created
            else f"Reconnected @{account.username} ({account.slug}); its token was renewed.",
        )
        return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))
    request.session[INVITE_THANKS_SESSION_KEY] = account.username
    return HttpResponseRedirect(reverse("accounts:invite-thanks"))
