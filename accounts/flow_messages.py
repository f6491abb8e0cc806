"""What each failure page of the sign-in, connect and invite flows says: a title,
what happened and what to do, per failure kind (the ``kind`` of
``accounts.services.errors.SignInError``). The page is
``accounts/templates/accounts/oauth_error.html``."""

from accounts.oauth import StateError
from accounts.services.invites import InviteError

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
    "owner_pinned": (
        "This username belongs to another Instagram account here",
        "The username is one of the agent's owners, but it is pinned to the Instagram "
        "account that first signed in with it, which stays the owner whatever it is called "
        "now. This is a different account with the same name. Nothing about it was stored.",
        "If you are the owner and your Instagram account itself changed, an administrator "
        "can delete the username's entry under Owner identities in the admin; then sign in "
        "again.",
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

# Failures whose fix is on the setup page (it gets a button).
SETUP_KINDS = frozenset({"code_rejected", "configuration", "not_configured"})
