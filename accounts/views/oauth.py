"""Instagram Login: ``GET /login/``, ``GET /oauth/instagram/callback/``, ``POST /logout/``.

The one callback serves three flows, told apart by the server-side state:
the owner signing in, a signed-in owner connecting another account, and a
client connecting through an invite. It checks, in this order: the state
(missing, unknown, another browser's, used, expired); Instagram's ``error``
(``access_denied`` apart from the rest); the code exchange, the long-lived
exchange and ``/me``; then the flow's own rules. Every failure ends on a page
saying what happened and what to do, with status 400 (403 for a refused
sign-in), and stores nothing.
"""

from __future__ import annotations

import logging
import re

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts import instagram
from accounts.models import Invite, OAuthState
from accounts.oauth import StateError, oauth_redirect_uri, oauth_state_consume, oauth_state_create
from accounts.permissions import is_owner
from accounts.services.connect import (
    InstagramLogin,
    InviteError,
    NotAnOwner,
    account_connect,
    account_connect_by_invite,
    account_sign_in,
    invite_check,
    invite_link_token,
    token_obtain_from_code,
)

logger = logging.getLogger(__name__)

Purpose = OAuthState.Purpose
NEXT_SESSION_KEY = "tokenagent_next"
INVITE_THANKS_SESSION_KEY = "tokenagent_invite_connected"
BACKEND = "django.contrib.auth.backends.ModelBackend"
FAILURE_STATUS = 400
REFUSED_STATUS = 403

# What each failure page says: (title, what happened, what to do).
FAILURES: dict[str, tuple[str, str, str]] = {
    StateError.MISSING: (
        "This link is incomplete",
        "The address Instagram sends you back to carries a 'state' value, and this one had "
        "none, so the agent cannot tell which sign-in it belongs to. Nothing was stored.",
        "Start again from the button; do not open the callback address by hand.",
    ),
    StateError.UNKNOWN: (
        "This sign-in was not started here",
        "The 'state' in this address is not one this agent handed out (or it was cleaned up "
        "long ago). Nothing was stored.",
        "Start again from the button.",
    ),
    StateError.OTHER_SESSION: (
        "This sign-in was started in another browser",
        "The sign-in was started in a different browser or tab session, or your session "
        "cookie was lost on the way. For your safety it is not accepted here. "
        "Nothing was stored.",
        "Start again in this browser, and make sure it accepts cookies from this site.",
    ),
    StateError.USED: (
        "This sign-in link was already used",
        "Each trip to Instagram can be completed once, and this one was completed already "
        "(perhaps in another tab, or by reloading the page). Nothing more was stored.",
        "If the other tab succeeded you are done; otherwise start again.",
    ),
    StateError.EXPIRED: (
        "This sign-in took too long",
        "More than 10 minutes passed between leaving for Instagram and coming back, so the "
        "link expired. Nothing was stored.",
        "Start again and complete the Instagram step within 10 minutes.",
    ),
    "denied": (
        "Instagram access was not granted",
        "You (or Instagram) declined to let this agent access the account. Nothing was stored.",
        "To connect the account, start again and choose Allow on Instagram's page.",
    ),
    "instagram_error": (
        "Instagram reported an error",
        "Instagram sent you back with an error instead of an authorization. Nothing was stored.",
        "Start again. If it happens again, check the agent's setup page (app ID, redirect URI).",
    ),
    "no_code": (
        "Instagram sent no authorization code",
        "The address Instagram sent you back to has neither a code nor an error. "
        "Nothing was stored.",
        "Start again from the button.",
    ),
    "code_rejected": (
        "Instagram refused the authorization",
        "Instagram did not accept the authorization code: it may have expired or been used, "
        "or the app's ID, secret or redirect URI do not match Meta's dashboard. "
        "Nothing was stored.",
        "Start again. If it keeps failing, compare the setup page's redirect URI and app ID "
        "with Meta's dashboard.",
    ),
    "permission": (
        "A permission is missing",
        "The account did not grant instagram_business_basic, which the feed needs. "
        "Nothing was stored.",
        "Start again and leave every permission switched on on Instagram's page.",
    ),
    "token_refused": (
        "Instagram did not accept the new token",
        "Instagram issued a token but then refused it. This happens with personal "
        "(non-professional) accounts. Nothing was stored.",
        "Make sure the account is a Business or Creator account, then start again.",
    ),
    "rate_limited": (
        "Instagram is limiting requests",
        "Instagram asked the agent to slow down before the account could be connected. "
        "Nothing was stored.",
        "Wait a few minutes, then start again.",
    ),
    "unreachable": (
        "Instagram could not be reached",
        "The agent could not talk to Instagram (network problem, timeout or an outage on "
        "Instagram's side). Nothing was stored.",
        "Wait a minute, then start again.",
    ),
    "malformed": (
        "Instagram answered unexpectedly",
        "Instagram's answer did not have the expected shape. Nothing was stored.",
        "Start again. If it keeps happening, check INSTAGRAM_API_URL and INSTAGRAM_GRAPH_URL.",
    ),
    "configuration": (
        "The agent is not set up correctly",
        "Instagram cannot be used with the agent's current settings. Nothing was stored.",
        "The agent's owner should open the setup page and fix what it lists.",
    ),
    "instagram_refused": (
        "Instagram refused the sign-in",
        "Instagram answered with an error. Nothing was stored.",
        "Start again. If it keeps failing, check the setup page.",
    ),
    "not_owner": (
        "This Instagram account cannot sign in here",
        "Only the agent's owners may sign in, and this account is not one of them. "
        "Nothing about it was stored.",
        "If this is your agent, add the username to OWNER_INSTAGRAM_USERNAMES and restart it. "
        "If someone asked you to connect your account, use the invite link they sent you.",
    ),
    "deactivated": (
        "This account's access was switched off",
        "The agent's user for this Instagram account is deactivated. Nothing was stored.",
        "Ask the agent's administrator to reactivate it in the admin.",
    ),
    "not_signed_in": (
        "You are no longer signed in",
        "Connecting another account needs the owner who started it to be signed in, and "
        "this browser is not (or is signed in as someone else). Nothing was stored.",
        "Sign in, then connect the account again from the dashboard.",
    ),
    "invite_" + InviteError.TAMPERED: (
        "This invite link is not valid",
        "The link was changed or copied incompletely. Nothing was stored.",
        "Copy the whole link again, or ask the person who sent it for a new one.",
    ),
    "invite_" + InviteError.UNKNOWN: (
        "This invite link was withdrawn",
        "The invite no longer exists. Nothing was stored.",
        "Ask the person who sent it for a new link.",
    ),
    "invite_" + InviteError.USED: (
        "This invite link was already used",
        "Each invite link connects one account, and this one has been used. "
        "Nothing more was stored.",
        "If you connected your account already, you are done. Otherwise ask for a new link.",
    ),
    "invite_" + InviteError.EXPIRED: (
        "This invite link has expired",
        "Invite links work for a limited time only. Nothing was stored.",
        "Ask the person who sent it for a new link.",
    ),
    "not_configured": (
        "Instagram is not configured",
        "INSTAGRAM_APP_ID and INSTAGRAM_APP_SECRET are not set, so the agent cannot send you "
        "to Instagram.",
        "Set them (see the setup page), restart the agent and try again.",
    ),
}

_ERROR_KINDS: list[tuple[type[instagram.InstagramError], str]] = [
    (instagram.InstagramCodeExchangeError, "code_rejected"),
    (instagram.InstagramPermissionError, "permission"),
    (instagram.InstagramAuthError, "token_refused"),
    (instagram.InstagramRateLimitError, "rate_limited"),
    (instagram.InstagramTransientError, "unreachable"),
    (instagram.InstagramMalformedResponseError, "malformed"),
    (instagram.InstagramConfigurationError, "configuration"),
    (instagram.InstagramError, "instagram_refused"),
]
# Instagram's error/error_reason values are shown only when they look like codes;
# free text in the address is never echoed onto the agent's page.
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _kind_for(error: instagram.InstagramError) -> str:
    for cls, kind in _ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return "instagram_refused"  # pragma: no cover (InstagramError is last)


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
        "show_setup": kind in {"code_rejected", "configuration", "not_configured"},
    }
    return render(request, "accounts/oauth_error.html", context, status=status)


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


@require_GET
def login(request: HttpRequest) -> HttpResponse:
    """Sign-in = connect the owner's own account (PRODUCT.md)."""
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    if is_owner(request.user):
        return HttpResponseRedirect(target or reverse("accounts:home"))
    if target:
        request.session[NEXT_SESSION_KEY] = target
    return authorization_start(request, purpose=Purpose.SIGN_IN)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return HttpResponseRedirect(reverse("accounts:home"))


def _instagram_error_detail(request: HttpRequest) -> str:
    codes = [
        v
        for v in (request.GET.get("error", ""), request.GET.get("error_reason", ""))
        if _ERROR_CODE.match(v)
    ]
    return ", ".join(dict.fromkeys(codes))


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    try:
        state = oauth_state_consume(session=request.session, state=request.GET.get("state"))
    except StateError as exc:
        return flow_failure(request, exc.reason)

    if "error" in request.GET or "error_reason" in request.GET:
        kind = "denied" if request.GET.get("error") == "access_denied" else "instagram_error"
        return flow_failure(request, kind, state=state, detail=_instagram_error_detail(request))
    code = instagram.clean_code(request.GET.get("code", ""))
    if not code:
        return flow_failure(request, "no_code", state=state)

    if state.purpose == Purpose.CONNECT and not (
        request.user.is_authenticated
        and request.user.pk == state.user_id
        and is_owner(request.user)
    ):
        return flow_failure(
            request, "not_signed_in", state=state, retry_url=reverse("accounts:login")
        )
    if state.purpose == Purpose.INVITE:
        try:
            invite_check(invite=state.invite)
        except InviteError as exc:
            return flow_failure(request, f"invite_{exc.reason}", state=state, retry_url=None)

    try:
        login_result = token_obtain_from_code(
            code=code, redirect_uri=oauth_redirect_uri(request=request)
        )
    except instagram.InstagramError as exc:
        return flow_failure(request, _kind_for(exc), state=state, detail=exc.describe())
    except ImproperlyConfigured:
        return flow_failure(request, "not_configured", state=state, retry_url=None)

    finish = {
        Purpose.SIGN_IN: _finish_sign_in,
        Purpose.CONNECT: _finish_connect,
        Purpose.INVITE: _finish_invite,
    }[state.purpose]
    try:
        return finish(request, state, login_result)
    except ImproperlyConfigured:
        # e.g. an unusable TOKEN_ENCRYPTION_KEY: the transaction rolled back.
        logger.exception("storing the connected account failed on a setting")
        return flow_failure(request, "configuration", state=state, retry_url=None)


def _finish_sign_in(request: HttpRequest, state: OAuthState, login_result: InstagramLogin):
    target = request.session.pop(NEXT_SESSION_KEY, "")
    try:
        with transaction.atomic():
            result = account_sign_in(login=login_result)
            auth_login(request, result.user, backend=BACKEND)
    except NotAnOwner as exc:
        return flow_failure(
            request,
            "deactivated" if exc.deactivated else "not_owner",
            state=state,
            username=exc.username,
            status=REFUSED_STATUS,
            retry_url=None,
        )
    account = result.account
    messages.success(
        request,
        f"Signed in as @{account.username}. "
        + (
            f"The account is connected and served as {account.slug}."
            if result.created
            else "Its token was renewed."
        ),
    )
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    return HttpResponseRedirect(target or reverse("accounts:home"))


def _finish_connect(request: HttpRequest, state: OAuthState, login_result: InstagramLogin):
    result = account_connect(login=login_result, connected_by=request.user)
    account = result.account
    messages.success(
        request,
        f"Connected @{account.username}, served as {account.slug}."
        if result.created
        else f"Reconnected @{account.username} ({account.slug}); its token was renewed.",
    )
    return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))


def _finish_invite(request: HttpRequest, state: OAuthState, login_result: InstagramLogin):
    try:
        result = account_connect_by_invite(login=login_result, invite=state.invite)
    except InviteError as exc:
        return flow_failure(request, f"invite_{exc.reason}", state=state, retry_url=None)
    request.session[INVITE_THANKS_SESSION_KEY] = result.account.username
    return HttpResponseRedirect(reverse("accounts:invite-thanks"))
