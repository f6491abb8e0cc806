"""Sandbox tokens and codes: stateless, signed, verifiable by any sandbox process
sharing the signing key (SANDBOX_SIGNING_KEY, else SECRET_KEY).

A token looks like a real one (``IGAA`` + opaque text) and carries its user, kind
(short/long), issue and expiry times, so the 24-hour refresh floor and expiry can
be enforced without a database."""

import hashlib
import os
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from accounts.sandbox import state

TOKEN_SALT = "tokenagent.sandbox.token"  # noqa: S105 (a salt name)
CODE_SALT = "tokenagent.sandbox.code"
SHORT_LIFETIME = 3600
LONG_LIFETIME = 60 * 24 * 3600
CODE_LIFETIME = 3600


def _key() -> str:
    return os.environ.get("SANDBOX_SIGNING_KEY") or settings.SECRET_KEY


def user_id_for(username: str) -> str:
    """The professional account id (IG_ID): stable per username, 17 digits."""
    digits = int(hashlib.sha256(username.lower().encode()).hexdigest(), 16) % 10**11
    return f"178414{digits:011d}"


def app_scoped_id_for(username: str) -> str:
    digits = int(hashlib.sha256(b"app:" + username.lower().encode()).hexdigest(), 16) % 10**14
    return f"98{digits:014d}"


@dataclass(frozen=True)
class SandboxToken:
    username: str
    kind: str  # "short" or "long"
    issued_at: float  # not rounded: a token minted just after a revocation is not revoked
    expires_at: int


class TokenProblem(Exception):
    """Why a token is refused: carries the Graph error code/subcode to answer with."""

    def __init__(self, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.subcode = subcode


def mint(
    *,
    username: str,
    kind: str = "long",
    issued_at: float | None = None,
    lifetime: float | None = None,
) -> str:
    issued = float(issued_at if issued_at is not None else time.time())
    life = (
        lifetime if lifetime is not None else (LONG_LIFETIME if kind == "long" else SHORT_LIFETIME)
    )
    payload = {
        "u": username,
        "k": kind,
        "i": issued,
        "e": int(issued + life),
        "n": secrets.token_hex(4),
    }
    return "IGAA" + signing.dumps(payload, key=_key(), salt=TOKEN_SALT)


def verify(token: str, *, now: float | None = None) -> SandboxToken:
    now = now if now is not None else time.time()
    if not token or not token.startswith("IGAA"):
        raise TokenProblem("Invalid OAuth access token - Cannot parse access token")
    try:
        data = signing.loads(token[4:], key=_key(), salt=TOKEN_SALT)
    except signing.BadSignature:
        raise TokenProblem("Invalid OAuth access token - Cannot parse access token") from None
    t = SandboxToken(username=data["u"], kind=data["k"], issued_at=data["i"], expires_at=data["e"])
    if now >= t.expires_at:
        stamp = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(t.expires_at))
        raise TokenProblem(f"Error validating access token: Session has expired on {stamp}.", 463)
    revoked = state.revoked_at(t.username)
    if revoked is not None and t.issued_at <= revoked:
        raise TokenProblem(
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons.",
            460,
        )
    return t


def mint_code(*, username: str, client_id: str, redirect_uri: str) -> str:
    payload = {"u": username, "c": client_id, "r": redirect_uri, "n": secrets.token_hex(8)}
    return "AQD" + signing.dumps(payload, key=_key(), salt=CODE_SALT)


def redeem_code(code: str, *, client_id: str, redirect_uri: str) -> str:
    """Returns the username; raises ValueError with Instagram's message otherwise."""
    try:
        data = signing.loads(code[3:], key=_key(), salt=CODE_SALT, max_age=CODE_LIFETIME)
    except (signing.BadSignature, IndexError):
        raise ValueError("Matching code was not found or was already used") from None
    if data["c"] != client_id:
        raise ValueError("Invalid platform app")
    if data["r"] != redirect_uri:
        raise ValueError(
            "Error validating verification code. Please make sure your "
            "redirect_uri is identical to the one you used in the OAuth dialog request"
        )
    if not state.claim_code(data["n"]):
        raise ValueError("Matching code was not found or was already used")
    return data["u"]
