"""Instagram payloads and error shapes from docs/instagram.md, for `responses`.

Each function returns exactly what the real API sends (observed and documented
variants), and ``register_*`` helpers wire whole flows onto a RequestsMock; last,
Meta's ``signed_request`` as its deauthorize and data-deletion callbacks send it."""

import base64
import hashlib
import hmac
import json
import re

import requests
import responses

APP_ID = "1234567890123456"
APP_SECRET = "test-app-secret"
AUTHORIZE_URL = "https://www.instagram.com/oauth/authorize"
API = "https://api.instagram.com"
GRAPH = "https://graph.instagram.com"
VERSION = "v21.0"

SHORT_TOKEN = "IGAAFakeShort0a1b2c3"
LONG_TOKEN = "IGAAFakeLongLived9z8y7x"
REFRESHED_TOKEN = "IGAAFakeRefreshedLongLived42"
OWNER = "acme_bakery"  # the agent's owner in agent_settings (tests/conftest.py)
USER_ID = "17841400000000001"
APP_SCOPED_ID = "9876543210987654"
SIXTY_DAYS = 5183944


# --- Bodies -------------------------------------------------------------------


def code_exchange_observed(
    *, token=SHORT_TOKEN, user_id=27640875392278831, permissions=("instagram_business_basic",)
):
    """Flat body, numeric user_id, list permissions (section 2, observed)."""
    return {"access_token": token, "user_id": user_id, "permissions": list(permissions)}


def code_exchange_documented(
    *, token=SHORT_TOKEN, user_id="8765432101234567", permissions="instagram_business_basic"
):
    """``data``-wrapped, string user_id, comma-separated permissions (section 2, guide)."""
    return {"data": [{"access_token": token, "user_id": user_id, "permissions": permissions}]}


def code_exchange_error(message="Matching code was not found or was already used"):
    """The code-exchange endpoint's own flat error shape, with HTTP 400."""
    return {"error_type": "OAuthException", "code": 400, "error_message": message}


def long_lived(*, token=LONG_TOKEN, expires_in=SIXTY_DAYS):
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in}


def refreshed(*, token=REFRESHED_TOKEN, expires_in=SIXTY_DAYS):
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in}


def me(*, user_id=USER_ID, username="acme_bakery", app_scoped_id=APP_SCOPED_ID, wrapped=False):
    body = {
        "user_id": user_id,
        "username": username,
        "name": username.replace("_", " ").title(),
        "account_type": "BUSINESS",
        "media_count": 214,
        "id": app_scoped_id,
    }
    return {"data": [body]} if wrapped else body


MEDIA_FIELDS_SENT = (
    "id,media_type,media_url,thumbnail_url,permalink,caption,timestamp,"
    "children{id,media_type,media_url,thumbnail_url}"
)
CDN = "https://scontent.cdninstagram.com"


def media_next_url(*, after, count=3, token=LONG_TOKEN, user_id=USER_ID, fields=True):
    """A ``paging.next`` URL as Graph builds it: IG user id path, the token, the
    fields and the limit of the call in the query, then the cursor."""
    query = f"access_token={token}"
    if fields:
        query += f"&fields={MEDIA_FIELDS_SENT}"
    return f"{GRAPH}/{VERSION}/{user_id}/media?{query}&limit={count}&after={after}"


def cdn_url(name, expiry="6823A1B2"):
    """A media CDN URL: signed (``oh=``), expiring (``oe=``)."""
    return f"{CDN}/v/t51.2885-15/{name}?_nc_cat=101&oh=00_AYfakeSignature&oe={expiry}"


def media_item(n, *, media_type="IMAGE", username="acme_bakery", caption=True, **fields):
    """One /me/media item (section 6) of each media type, Instagram's way: a
    VIDEO has ``thumbnail_url``, a carousel's ``media_url`` is its first child's and
    its items come through ``children{...}``."""
    item = {
        "id": f"180345678901{n:05d}",
        "media_type": media_type,
        "permalink": f"https://www.instagram.com/p/DFake{n:04d}/",
        "timestamp": "2025-03-14T09:26:53+0000",
        "username": username,
    }
    if caption is not False:
        item["caption"] = caption if isinstance(caption, str) else f"Post {n}"
    if media_type == "VIDEO":
        item["media_url"] = cdn_url(f"fake{n}.mp4")
        item["thumbnail_url"] = cdn_url(f"fake{n}_thumb.jpg")
    elif media_type == "CAROUSEL_ALBUM":
        children = [
            {
                "id": f"179345678901{n:03d}{c:02d}",
                "media_type": "IMAGE",
                "media_url": cdn_url(f"fake{n}_{c}.jpg"),
            }
            for c in range(2)
        ]
        children.append(
            {
                "id": f"179345678901{n:03d}02",
                "media_type": "VIDEO",
                "media_url": cdn_url(f"fake{n}_2.mp4"),
                "thumbnail_url": cdn_url(f"fake{n}_2_thumb.jpg"),
            }
        )
        item["media_url"] = children[0]["media_url"]
        item["children"] = {"data": children}
    else:
        item["media_url"] = cdn_url(f"fake{n}.jpg")
    item.update(fields)
    return item


def media_page(
    *, count=3, after=None, username="acme_bakery", start=0, token=LONG_TOKEN, items=None
):
    items = (
        items
        if items is not None
        else [media_item(start + i, username=username) for i in range(count)]
    )
    body = {"data": items, "paging": {"cursors": {"before": "QVFIUb", "after": "QVFIUa"}}}
    if after:
        body["paging"]["next"] = media_next_url(after=after, count=count, token=token)
    return body


def graph_error(code, subcode=None, message=None, error_type="OAuthException", **extra):
    """Graph's ``{"error": {...}}`` (section 7)."""
    messages = {
        190: "Error validating access token: Session has expired on Friday, 14-Mar-25 "
        "02:00:00 PDT. The current time is Saturday, 15-Mar-25 10:00:00 PDT.",
        4: "Application request limit reached",
        17: "User request limit reached",
        1: "An unknown error occurred",
        2: "An unexpected error has occurred. Please retry your request later.",
        10: "Application does not have permission for this action",
        100: "Unsupported request - method type: post",
        102: "Session key invalid or no longer valid",
        3: "Application does not have the capability to make this API call.",
        32: "Page request limit reached",
        613: "Calls to this api have exceeded the rate limit.",
        80002: "There have been too many calls to this Instagram account. "
        "Wait a bit and try again.",
        341: "Application limit reached",
        368: "The action attempted has been deemed abusive or is otherwise disallowed",
        200: "Permissions error",
    }
    err = {
        "message": message or messages.get(code, "Instagram error"),
        "type": error_type,
        "code": code,
        "fbtrace_id": "AbCdEfFakeTrace1",
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra)
    return {"error": err}


def business_use_case_usage(*, minutes, ig_id=USER_ID, call_count=100):
    """The ``X-Business-Use-Case-Usage`` header value (section 8); minutes to wait."""
    return json.dumps(
        {
            ig_id: [
                {
                    "type": "instagram",
                    "call_count": call_count,
                    "total_cputime": 3,
                    "total_time": 4,
                    "estimated_time_to_regain_access": minutes,
                }
            ]
        }
    )


def connection_error_for(url):
    """What requests raises when a host is unreachable: its message embeds the full
    URL, query string (access_token=, client_secret=) included."""
    parts = url.split("://", 1)[-1]
    host, _, path = parts.partition("/")
    return requests.ConnectionError(
        f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded with url: "
        f"/{path} (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object "
        "at 0x7f0000000000>: Failed to establish a new connection: [Errno 111] "
        "Connection refused'))"
    )


# --- URLs ---------------------------------------------------------------------

CODE_EXCHANGE_URL = f"{API}/oauth/access_token"
LONG_LIVED_URL = f"{GRAPH}/access_token"
REFRESH_URL = f"{GRAPH}/refresh_access_token"
ME_URL = re.compile(rf"^{re.escape(GRAPH)}/{re.escape(VERSION)}/me(\?.*)?$")
MEDIA_URL = re.compile(rf"^{re.escape(GRAPH)}/{re.escape(VERSION)}/me/media(\?.*)?$")
CDN_URL = re.compile(rf"^{re.escape(CDN)}/.*$")


# --- Flows --------------------------------------------------------------------


def register_login(
    rsps: responses.RequestsMock,
    *,
    username="acme_bakery",
    user_id=USER_ID,
    shape="observed",
    long_token=LONG_TOKEN,
):
    """Code exchange -> long-lived exchange -> /me, all succeeding."""
    body = code_exchange_observed() if shape == "observed" else code_exchange_documented()
    rsps.add(responses.POST, CODE_EXCHANGE_URL, json=body)
    rsps.add(responses.GET, LONG_LIVED_URL, json=long_lived(token=long_token))
    rsps.add(
        responses.GET,
        ME_URL,
        json=me(user_id=user_id, username=username, wrapped=shape == "documented"),
    )


def register_refresh(rsps: responses.RequestsMock, *, token=REFRESHED_TOKEN, status=200, body=None):
    rsps.add(responses.GET, REFRESH_URL, json=body or refreshed(token=token), status=status)


# --- Meta's signed_request ---------------------------------------------------------


def b64url(data: bytes) -> str:
    """Base64url without padding, as Meta encodes a signed_request's two parts."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_request(payload, secret: str = APP_SECRET) -> str:
    """``<signature>.<payload>``: ``payload`` as JSON, signed with HMAC-SHA256 by the
    app secret, as Meta sends it."""
    body = b64url(json.dumps(payload).encode())
    return f"{b64url(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())}.{body}"


def meta_post(path: str, value: str):
    """POST ``signed_request=value`` to ``path`` as Meta does: a form, no cookies, no
    CSRF token."""
    from django.test import Client

    return Client(enforce_csrf_checks=True).post(path, {"signed_request": value})
