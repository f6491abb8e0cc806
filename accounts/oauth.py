"""OAuth ``state`` for Instagram Login: created server-side, bound to the browser's
session, single-use and short-lived (PRODUCT.md "OAuth safety", docs/instagram.md §11).

No HTTP here. A state is an ``OAuthState`` row holding a random value, the session
key it was issued to, what the flow is for (sign-in, connect another account, a
client's invite) and when it was created. The callback consumes it with one
conditional ``UPDATE ... WHERE used_at IS NULL``: of two tabs racing the same
callback exactly one wins, so a code is never exchanged twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invite, OAuthState

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# Long enough to type a password and pass two-factor checks, short enough that a
# leaked state is worthless soon after.
STATE_TTL = timedelta(minutes=10)
# States older than this are deleted when new ones are made (they are useless).
_PURGE_AFTER = timedelta(days=1)
# The session remembers that a flow is pending, so the cookie is set even for an
# anonymous visitor whose session would otherwise be empty.
SESSION_FLAG = "tokenagent_oauth_pending"


class StateError(Exception):
    """The callback's ``state`` cannot be used. ``reason`` is one of the constants below."""

    MISSING = "missing"
    UNKNOWN = "unknown"
    OTHER_SESSION = "other_session"
    USED = "used"
    EXPIRED = "expired"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def oauth_redirect_uri(*, request: HttpRequest) -> str:
    """``<scheme>://<host>/oauth/instagram/callback/`` as this request sees the agent.

    The same function builds it for the authorize URL and for the code exchange,
    so both carry the identical string Meta's dashboard holds. The scheme follows
    ``SECURE_PROXY_SSL_HEADER`` (https behind Heroku's router)."""
    return request.build_absolute_uri(reverse("accounts:oauth-callback"))


def _session_key(session: SessionBase) -> str:
    """The session's key, creating and saving the session first if it has none."""
    session[SESSION_FLAG] = True
    if not session.session_key:
        session.save()
    key = session.session_key
    if not key:
        raise RuntimeError("the session store saved the session without a key")
    return key


def oauth_state_create(
    *,
    session: SessionBase,
    purpose: str,
    user: User | AnonymousUser | None = None,
    invite: Invite | None = None,
    now: datetime | None = None,
) -> OAuthState:
    """A fresh random state bound to ``session`` (created if needed)."""
    now = now or timezone.now()
    OAuthState.objects.filter(created_at__lt=now - _PURGE_AFTER).delete()
    return OAuthState.objects.create(
        session_key=_session_key(session),
        purpose=purpose,
        user=user if user is not None and user.is_authenticated else None,
        invite=invite,
        created_at=now,
    )


def oauth_state_consume(
    *, session: SessionBase, state: str | None, now: datetime | None = None
) -> OAuthState:
    """Mark ``state`` used and return it, or raise :class:`StateError`.

    Checks, in order: present, known, not used, issued to this session, not
    expired. The final claim is a conditional UPDATE whose row count decides
    which of two concurrent callbacks may go on."""
    now = now or timezone.now()
    state = (state or "").strip()
    if not state:
        raise StateError(StateError.MISSING)
    if "\x00" in state:
        # Never issued by us, and PostgreSQL refuses NUL in a query (a 500 otherwise).
        raise StateError(StateError.UNKNOWN)
    row = OAuthState.objects.filter(state=state).select_related("invite", "user").first()
    if row is None:
        raise StateError(StateError.UNKNOWN)
    if row.used_at is not None:
        # Checked before the session: signing in gives the browser a new session
        # key, and a reload or a second tab should hear "already used".
        raise StateError(StateError.USED)
    if not session.session_key or row.session_key != session.session_key:
        # Started in another browser (or the session cookie was lost). Leave the
        # row alone: a forged callback must not burn the real browser's state.
        raise StateError(StateError.OTHER_SESSION)
    if row.created_at <= now - STATE_TTL:
        raise StateError(StateError.EXPIRED)
    claimed = OAuthState.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now)
    if claimed != 1:
        raise StateError(StateError.USED)
    row.used_at = now
    session.pop(SESSION_FLAG, None)
    return row
