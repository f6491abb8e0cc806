"""The refusals the services raise. Every message is safe to show (no token);
``SignInError`` also names the failure page a login flow ends on."""

from __future__ import annotations

from typing import Any

# Where a failure page's "Start again" leads (accounts/views/oauth.py builds the URL).
RETRY_FLOW = "flow"  # back to where this flow starts (sign-in, dashboard, invite link)
RETRY_LOGIN = "login"  # to the sign-in page


class ConnectError(Exception):
    """Base of every refusal a person can act on."""


class SignInError(ConnectError):
    """A sign-in, connect or invite step failed and stored nothing.

    ``kind`` names the page (texts in ``accounts/flow_messages.py``); ``state`` is
    the consumed OAuth state when there is one; ``detail`` and ``username`` are
    shown on the page (both already safe to show)."""

    status = 400
    retry: str | None = RETRY_FLOW

    def __init__(
        self,
        kind: str,
        *,
        state: Any = None,
        detail: str = "",
        username: str = "",
        message: str = "",
    ) -> None:
        self.kind = kind
        self.state = state
        self.detail = detail
        self.username = username
        super().__init__(message or (f"{kind}: {detail}" if detail else kind))
