"""The OAuth callback as one service: check the state and Instagram's answer, swap
the code for a token, then finish the flow the state was issued for (sign-in,
connect another account, invite). Every failure is a :class:`SignInError` naming
its page, raised before anything is stored or with everything rolled back.

Order (as django-allauth's callback): the state first (missing, unknown, another
browser's, used, expired), then Instagram's ``error`` (``access_denied`` apart
from the rest), the flow's own preconditions, the code exchange, the long-lived
exchange and ``/me``, and last the flow's write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from accounts import instagram
from accounts.models import OAuthState
from accounts.oauth import StateError, oauth_state_consume
from accounts.permissions import is_owner
from accounts.services.errors import RETRY_LOGIN, SignInError
from accounts.services.invites import invite_check
from accounts.services.signin import (
    ConnectResult,
    InstagramLogin,
    account_connect,
    account_connect_by_invite,
    account_sign_in,
    token_obtain_from_code,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.contrib.sessions.backends.base import SessionBase

logger = logging.getLogger(__name__)

Purpose = OAuthState.Purpose


class StateRefused(SignInError):
    """The callback's ``state`` cannot be used; ``kind`` is the StateError reason."""


class InstagramRefused(SignInError):
    """Instagram sent an error back, no code, or refused a step of the exchange."""


class NotConfigured(SignInError):
    """A setting makes the flow impossible (``not_configured``, ``configuration``)."""

    retry = None


class NotSignedIn(SignInError):
    """Connecting another account needs the owner who started it, still signed in."""

    retry = RETRY_LOGIN


# Instagram's errors, most specific first, and the page each ends on.
INSTAGRAM_ERROR_KINDS: list[tuple[type[instagram.InstagramError], str]] = [
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


@dataclass(frozen=True)
class CallbackOutcome:
    purpose: str
    result: ConnectResult


def oauth_callback_complete(
    *,
    session: SessionBase,
    params: Mapping[str, str],
    user: User | AnonymousUser,
    redirect_uri: str,
    sign_in: Callable[[User], None],
) -> CallbackOutcome:
    """Complete the flow the callback's ``state`` belongs to. ``params`` is the
    callback's query, ``user`` the browser's current user, and ``sign_in`` logs a
    user into the browser's session (called inside the sign-in's transaction)."""
    try:
        state = oauth_state_consume(session=session, state=params.get("state"))
    except StateError as exc:
        raise StateRefused(exc.reason) from None

    try:
        return _complete(
            state=state, params=params, user=user, redirect_uri=redirect_uri, sign_in=sign_in
        )
    except SignInError as exc:
        exc.state = exc.state or state  # refusals raised by the flows do not know it
        raise


def _complete(
    *,
    state: OAuthState,
    params: Mapping[str, str],
    user: User | AnonymousUser,
    redirect_uri: str,
    sign_in: Callable[[User], None],
) -> CallbackOutcome:
    if "error" in params or "error_reason" in params:
        kind = "denied" if params.get("error") == "access_denied" else "instagram_error"
        raise InstagramRefused(kind, state=state, detail=_error_codes(params))
    code = instagram.clean_code(params.get("code", ""))
    if not code:
        raise InstagramRefused("no_code", state=state)

    if state.purpose == Purpose.CONNECT and not (
        user.is_authenticated and user.pk == state.user_id and is_owner(user)
    ):
        raise NotSignedIn("not_signed_in", state=state)
    if state.purpose == Purpose.INVITE:
        invite_check(invite=state.invite)

    try:
        login = token_obtain_from_code(code=code, redirect_uri=redirect_uri)
    except instagram.InstagramError as exc:
        raise InstagramRefused(_kind_for(exc), state=state, detail=exc.describe()) from None
    except ImproperlyConfigured:
        raise NotConfigured("not_configured", state=state) from None

    try:
        result = _finish(state=state, login=login, user=user, sign_in=sign_in)
    except ImproperlyConfigured:
        # e.g. an unusable TOKEN_ENCRYPTION_KEY: the transaction rolled back.
        logger.exception("storing the connected account failed on a setting")
        raise NotConfigured("configuration", state=state) from None
    return CallbackOutcome(purpose=state.purpose, result=result)


def _finish(
    *,
    state: OAuthState,
    login: InstagramLogin,
    user: User | AnonymousUser,
    sign_in: Callable[[User], None],
) -> ConnectResult:
    if state.purpose == Purpose.SIGN_IN:
        with transaction.atomic():
            result = account_sign_in(login=login)
            sign_in(result.user)
        return result
    if state.purpose == Purpose.CONNECT:
        return account_connect(login=login, connected_by=user)
    return account_connect_by_invite(login=login, invite=invite_check(invite=state.invite))


def _kind_for(error: instagram.InstagramError) -> str:
    for cls, kind in INSTAGRAM_ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return "instagram_refused"  # pragma: no cover (InstagramError is last)


def _error_codes(params: Mapping[str, str]) -> str:
    codes = [
        v for v in (params.get("error", ""), params.get("error_reason", "")) if _ERROR_CODE.match(v)
    ]
    return ", ".join(dict.fromkeys(codes))
