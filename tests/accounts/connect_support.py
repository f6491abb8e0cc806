"""Helpers shared by the sign-in / connect / import tests (their fixtures are in
tests/accounts/conftest.py)."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from accounts import instagram
from accounts.models import AccessToken, InstagramAccount, Invite, OAuthState
from accounts.services.signin import InstagramLogin
from tests import instagram_fakes as fakes

OWNER = fakes.OWNER
CALLBACK = "/oauth/instagram/callback/"
CODE = "AQDxFakeAuthorizationCode123"


def instagram_login(
    *, username=OWNER, user_id=fakes.USER_ID, token=fakes.LONG_TOKEN, app_scoped_id=""
) -> InstagramLogin:
    """What a completed Instagram login returns, without HTTP."""
    return InstagramLogin(
        grant=instagram.TokenGrant(
            access_token=token, expires_at=timezone.now() + timedelta(days=60)
        ),
        profile=instagram.Profile(
            user_id=user_id, id=app_scoped_id or fakes.APP_SCOPED_ID, username=username
        ),
    )


def start(client, path="/login/", method="get", data=None) -> dict[str, str]:
    """Start a flow; returns the authorize URL's query (state, redirect_uri, ...)."""
    response = getattr(client, method)(path, data or {})
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    query["_location"] = location
    return query


def callback(client, state: str | None, code: str | None = CODE, **extra):
    params = {k: v for k, v in {"state": state, "code": code, **extra}.items() if v is not None}
    return client.get(CALLBACK, params)


def counts() -> dict[str, int]:
    return {
        "accounts": InstagramAccount.objects.count(),
        "tokens": AccessToken.objects.count(),
        "users": get_user_model().objects.count(),
        "invites_used": Invite.objects.filter(used_at__isnull=False).count(),
    }


def exchange_calls(rsps) -> list:
    return [c for c in rsps.calls if c.request.url.startswith(fakes.CODE_EXCHANGE_URL)]


def database_dump() -> str:
    """Every row of every table, as text (what someone inspecting the database sees);
    session payloads decoded too."""
    chunks: list[str] = []
    with connection.cursor() as cur:
        for table in connection.introspection.table_names():
            cur.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(repr(row) for row in cur.fetchall())
    for session in Session.objects.all():
        chunks.append(repr(session.get_decoded()))
    return "\n".join(chunks)


def states() -> list[OAuthState]:
    return list(OAuthState.objects.order_by("created_at"))
