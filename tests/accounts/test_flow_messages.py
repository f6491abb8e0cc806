"""accounts/flow_messages.py: every failure the login flows can raise has a page."""

from accounts.flow_messages import FAILURES, SETUP_KINDS
from accounts.oauth import StateError
from accounts.services.invites import InviteError
from accounts.services.oauth_callback import INSTAGRAM_ERROR_KINDS

RAISED_BY_NAME = {
    "denied",
    "instagram_error",
    "no_code",
    "not_signed_in",
    "not_configured",
    "configuration",
    "not_owner",
    "deactivated",
    "owner_pinned",
}


def test_every_failure_kind_has_a_title_what_happened_and_what_to_do():
    states = {
        StateError.MISSING,
        StateError.UNKNOWN,
        StateError.OTHER_SESSION,
        StateError.USED,
        StateError.EXPIRED,
    }
    reasons = (InviteError.TAMPERED, InviteError.UNKNOWN, InviteError.USED, InviteError.EXPIRED)
    invites = {InviteError(reason).kind for reason in reasons}
    kinds = RAISED_BY_NAME | states | invites | {kind for _, kind in INSTAGRAM_ERROR_KINDS}
    assert kinds <= set(FAILURES)
    assert SETUP_KINDS <= set(FAILURES)
    for kind in kinds:
        title, happened, todo = FAILURES[kind]
        assert title and happened.endswith(".") and todo.endswith(".")
