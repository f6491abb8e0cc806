"""The sandbox Instagram (accounts/sandbox/) against docs/instagram.md: the authorize
window, the token endpoints, /me and /me/media in both response shapes, every
scripted failure of its README, and the control API. Through Django's test client
on /sandbox/ (tests/urls.py mounts it), plus a few calls over real HTTP to the
standalone server (``sandbox_process``)."""

import json
import time
import types
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import signing

from accounts.sandbox import state, tokens
from tests.sandbox_control import control, oauth_over_http, relative

CLIENT_ID = "1234567890123456"
REDIRECT_URI = "https://agent.example.com/oauth/instagram/callback/"
AUTHORIZE = {
    "client_id": CLIENT_ID,
    "redirect_uri": REDIRECT_URI,
    "response_type": "code",
    "scope": "instagram_business_basic",
    "state": "Zk3q9x2LmP0aVb7T",
}
LONG_EXPIRES_IN = 5183944  # docs/instagram.md, sections 3 and 4
SIXTY_DAYS = 60 * 24 * 3600


pytestmark = pytest.mark.usefixtures("clean_sandbox")


# --- helpers -------------------------------------------------------------------------------------


def authorize(client, *, username="acme_bakery", **overrides):
    """Press Allow on the consent page; returns the redirect's Location."""
    resp = client.post(
        "/sandbox/oauth/authorize",
        {**AUTHORIZE, "username": username, "decision": "allow", **overrides},
    )
    assert resp.status_code == 302
    return resp["Location"]


def code_from(location):
    return parse_qs(urlsplit(location).query)["code"][0]


def new_code(client, **overrides):
    return code_from(authorize(client, **overrides))


def exchange(client, the_code, **overrides):
    fields = {
        "client_id": CLIENT_ID,
        "client_secret": "test-app-secret",
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT_URI,
        "code": the_code,
        **overrides,
    }
    return client.post("/sandbox/oauth/access_token", {k: v for k, v in fields.items() if v})


def short_token(client, username="acme_bakery"):
    resp = exchange(client, new_code(client, username=username))
    assert resp.status_code == 200
    body = resp.json()
    return (body["data"][0] if "data" in body else body)["access_token"]


def long_token(client, username="acme_bakery"):
    resp = client.get(
        "/sandbox/access_token",
        {
            "grant_type": "ig_exchange_token",
            "client_secret": "test-app-secret",
            "access_token": short_token(client, username),
        },
    )
    assert resp.status_code == 200
    return resp.json()["access_token"]


def mint(client, username="acme_bakery", age_hours=48, **kw):
    resp = control(client, "mint", username=username, age_hours=age_hours, **kw)
    assert resp.status_code == 200
    return resp.json()["access_token"]


def refresh(client, token):
    return client.get(
        "/sandbox/refresh_access_token", {"grant_type": "ig_refresh_token", "access_token": token}
    )


def me(client, token, path="/sandbox/v21.0/me", **params):
    return client.get(path, {"access_token": token, **params})


def graph_error(resp):
    assert resp["Content-Type"].startswith("application/json")
    return resp.json()["error"]


def expect_graph_error(resp, code, subcode=None, status=400):
    assert resp.status_code == status
    err = graph_error(resp)
    assert err["code"] == code
    assert err.get("error_subcode") == subcode
    assert err["type"] == "OAuthException"
    assert err["fbtrace_id"]
    return err


def expect_flat_error(resp, message):
    assert resp.status_code == 400
    assert resp.json() == {"error_type": "OAuthException", "code": 400, "error_message": message}


# --- authorize window (www.instagram.com) --------------------------------------------------------


def test_authorize_page_announces_the_sandbox_and_offers_allow_and_deny(client):
    resp = client.get("/sandbox/oauth/authorize", AUTHORIZE)

    assert resp.status_code == 200
    html = resp.content.decode()
    assert "SANDBOX Instagram" in html
    assert "This is not instagram.com" in html
    assert (
        '<button class="allow" type="submit" name="decision" value="allow">Allow</button>' in html
    )
    assert 'name="decision" value="deny"' in html
    assert 'name="username"' in html
    # The form posts back what the app asked for.
    for name, value in AUTHORIZE.items():
        assert f'name="{name}" value="{value}"' in html


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"client_id": ""}, "Missing client_id"),
        ({"redirect_uri": ""}, "Invalid redirect_uri"),
        ({"redirect_uri": "/oauth/instagram/callback/"}, "Invalid redirect_uri"),
        ({"redirect_uri": "javascript:alert(1)"}, "Invalid redirect_uri"),
        ({"redirect_uri": "ftp://agent.example.com/cb"}, "Invalid redirect_uri"),
        ({"redirect_uri": REDIRECT_URI + "#frag"}, "Invalid redirect_uri"),
        ({"response_type": "token"}, "response_type must be code"),
        ({"scope": "instagram_business_content_publish"}, "must include instagram_business_basic"),
        ({"scope": "business_basic"}, "must include instagram_business_basic"),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_authorize_refuses_bad_parameters_with_an_error_page(client, change, problem, method):
    params = {**AUTHORIZE, **change, "username": "acme_bakery", "decision": "allow"}
    resp = getattr(client, method)("/sandbox/oauth/authorize", params)

    assert resp.status_code == 400
    html = resp.content.decode()
    assert problem in html
    assert "SANDBOX Instagram" in html
    assert "<form" not in html
    assert "Location" not in resp


@pytest.mark.parametrize(
    "scope",
    [
        "instagram_business_basic,instagram_business_manage_comments",
        "instagram_business_manage_comments instagram_business_basic",
    ],
)
def test_scope_may_be_a_comma_or_space_list(client, scope):
    resp = client.get("/sandbox/oauth/authorize", {**AUTHORIZE, "scope": scope})
    assert resp.status_code == 200


def test_allow_redirects_back_with_code_state_and_the_fragment(client):
    location = authorize(client)

    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    query = parse_qs(parts.query)
    assert set(query) == {"code", "state"}
    assert query["state"] == [AUTHORIZE["state"]]
    assert query["code"][0].startswith("AQD")
    assert parts.fragment == "_"
    assert location.endswith("#_")


def test_allow_keeps_a_query_already_in_the_redirect_uri_and_a_missing_state_stays_missing(client):
    location = authorize(client, redirect_uri="https://agent.example.com/cb?next=a", state="")

    parts = urlsplit(location)
    assert parse_qs(parts.query).keys() == {"next", "code"}
    assert parse_qs(parts.query)["next"] == ["a"]


def test_deny_redirects_with_access_denied_and_the_state(client):
    resp = client.post("/sandbox/oauth/authorize", {**AUTHORIZE, "decision": "deny"})

    assert resp.status_code == 302
    parts = urlsplit(resp["Location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    assert parse_qs(parts.query) == {
        "error": ["access_denied"],
        "error_reason": ["user_denied"],
        "error_description": ["The user denied your request"],
        "state": [AUTHORIZE["state"]],
    }
    assert "code" not in parts.query


@pytest.mark.parametrize("username", ["", "   ", "a" * 31, "no spaces", "<b>x</b>"])
def test_allow_needs_a_plausible_test_username(client, username):
    resp = client.post(
        "/sandbox/oauth/authorize", {**AUTHORIZE, "decision": "allow", "username": username}
    )
    assert resp.status_code == 400
    assert b"Enter a test username" in resp.content


def test_the_username_picked_is_the_account_the_code_is_for(client):
    token = short_token(client, username="@Corner.Cafe_2")
    body = me(client, token, fields="username,user_id").json()
    assert body["username"] == "Corner.Cafe_2"
    assert body["user_id"] == tokens.user_id_for("corner.cafe_2")


# --- code exchange (api.instagram.com) -----------------------------------------------------------


def test_code_exchange_answers_the_observed_flat_shape_by_default(client):
    resp = exchange(client, new_code(client))

    assert resp.status_code == 200
    raw = resp.content.decode()
    body = resp.json()
    assert set(body) == {"access_token", "user_id", "permissions"}
    assert body["access_token"].startswith("IGAA")
    # user_id is a JSON number (beyond 2**53), permissions a JSON array.
    assert isinstance(body["user_id"], int)
    assert str(body["user_id"]) == tokens.user_id_for("acme_bakery")
    assert f'"user_id": {body["user_id"]}' in raw
    assert body["permissions"] == ["instagram_business_basic"]
    assert tokens.verify(body["access_token"]).kind == "short"


def test_code_exchange_answers_the_documented_wrapped_shape_when_asked(client):
    assert control(client, "shape", shape="documented").status_code == 200

    body = exchange(client, new_code(client)).json()

    assert set(body) == {"data"}
    [item] = body["data"]
    assert set(item) == {"access_token", "user_id", "permissions"}
    assert item["user_id"] == tokens.user_id_for("acme_bakery")
    assert isinstance(item["user_id"], str)
    assert item["permissions"] == "instagram_business_basic"


def test_a_short_lived_token_lives_one_hour(client):
    token = short_token(client)
    parsed = tokens.verify(token)
    assert parsed.expires_at - parsed.issued_at == pytest.approx(3600, abs=1)


def test_a_code_is_single_use(client):
    code = new_code(client)
    assert exchange(client, code).status_code == 200

    expect_flat_error(exchange(client, code), "Matching code was not found or was already used")


def test_a_code_is_bound_to_its_redirect_uri(client):
    code = new_code(client)

    resp = exchange(client, code, redirect_uri="https://agent.example.com/other/")

    assert resp.status_code == 400
    assert "redirect_uri is identical" in resp.json()["error_message"]
    # A near miss (the dashboard's trailing slash) is a different URI too.
    resp = exchange(client, code, redirect_uri=REDIRECT_URI.rstrip("/"))
    assert "redirect_uri is identical" in resp.json()["error_message"]


def test_a_code_is_bound_to_its_client_id(client):
    code = new_code(client)
    expect_flat_error(exchange(client, code, client_id="999"), "Invalid platform app")


def test_a_code_with_the_fragment_still_attached_is_refused(client):
    # Instagram's "#_" is not part of the code: a client that forgets to strip it fails.
    code = new_code(client)
    expect_flat_error(
        exchange(client, code + "#_"), "Matching code was not found or was already used"
    )
    assert exchange(client, code).status_code == 200


@pytest.mark.parametrize(("seconds_later", "accepted"), [(3500, True), (3601, False)])
def test_a_code_expires_after_one_hour(client, monkeypatch, seconds_later, accepted):
    code = new_code(client)
    real_time = time.time
    # django.core.signing checks the code's age with time.time(): move that clock only.
    monkeypatch.setattr(
        signing, "time", types.SimpleNamespace(time=lambda: real_time() + seconds_later)
    )

    resp = exchange(client, code)

    if accepted:
        assert resp.status_code == 200
    else:
        expect_flat_error(resp, "Matching code was not found or was already used")


@pytest.mark.parametrize(
    "missing", ["client_id", "client_secret", "grant_type", "redirect_uri", "code"]
)
def test_code_exchange_requires_every_field(client, missing):
    code = new_code(client)
    expect_flat_error(
        exchange(client, code, **{missing: ""}), f"Missing required parameter: {missing}"
    )


def test_code_exchange_needs_the_authorization_code_grant_and_post(client):
    code = new_code(client)
    expect_flat_error(
        exchange(client, code, grant_type="client_credentials"), "Unsupported grant_type"
    )
    assert client.get("/sandbox/oauth/access_token", {"code": code}).status_code == 405
    assert exchange(client, code).status_code == 200  # neither attempt used the code up


def test_code_exchange_refuses_a_garbage_code(client):
    expect_flat_error(
        exchange(client, "AQDnot-a-code"), "Matching code was not found or was already used"
    )


# --- long-lived exchange (graph: access_token) ---------------------------------------------------


def test_long_lived_exchange_turns_a_short_token_into_a_60_day_one(client):
    short = short_token(client)

    resp = client.get(
        "/sandbox/access_token",
        {"grant_type": "ig_exchange_token", "client_secret": "s3cret", "access_token": short},
    )

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == LONG_EXPIRES_IN
    assert body["access_token"] != short
    parsed = tokens.verify(body["access_token"])
    assert (parsed.kind, parsed.username) == ("long", "acme_bakery")
    assert parsed.expires_at - parsed.issued_at == pytest.approx(SIXTY_DAYS, abs=1)


def test_long_lived_exchange_needs_a_short_token(client):
    resp = client.get(
        "/sandbox/access_token",
        {"grant_type": "ig_exchange_token", "client_secret": "s", "access_token": mint(client)},
    )
    expect_graph_error(resp, 190)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"grant_type": "ig_refresh_token"}, 100),
        ({"client_secret": ""}, 100),
        ({"access_token": "IGAAforged"}, 190),
        ({"access_token": ""}, 190),
    ],
)
def test_long_lived_exchange_refuses_bad_requests(client, params, code):
    query = {
        "grant_type": "ig_exchange_token",
        "client_secret": "s",
        "access_token": short_token(client),
        **params,
    }
    expect_graph_error(client.get("/sandbox/access_token", query), code)


def test_long_lived_exchange_is_get_only(client):
    resp = client.post(
        "/sandbox/access_token",
        {"grant_type": "ig_exchange_token", "client_secret": "s", "access_token": "x"},
    )
    assert resp.status_code == 405


# --- refresh (graph: refresh_access_token) -------------------------------------------------------


def test_refresh_returns_a_new_token_valid_60_days_from_now(client):
    old = mint(client, age_hours=48)

    resp = refresh(client, old)

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == LONG_EXPIRES_IN
    assert body["access_token"] != old
    parsed = tokens.verify(body["access_token"])
    assert parsed.kind == "long"
    assert parsed.issued_at == pytest.approx(time.time(), abs=5)
    assert parsed.expires_at == pytest.approx(time.time() + SIXTY_DAYS, abs=5)
    # The old one still answers until it expires (the agent keeps it until the new is stored).
    assert me(client, old).status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_refresh_is_get_only(client, method):
    resp = getattr(client, method)(
        "/sandbox/refresh_access_token",
        {"grant_type": "ig_refresh_token", "access_token": mint(client)},
    )
    err = expect_graph_error(resp, 100)
    assert err["message"] == f"Unsupported request - method type: {method}"


@pytest.mark.parametrize(("age_hours", "ok"), [(0, False), (23.9, False), (24.1, True)])
def test_refresh_refuses_tokens_younger_than_24_hours(client, age_hours, ok):
    resp = refresh(client, mint(client, age_hours=age_hours))
    if ok:
        assert resp.status_code == 200
    else:
        err = expect_graph_error(resp, 100)
        assert "24 hours" in err["message"]


def test_a_token_fresh_from_login_cannot_be_refreshed_yet(client):
    err = expect_graph_error(refresh(client, long_token(client)), 100)
    assert "at least 24 hours old" in err["message"]


def test_refresh_of_an_expired_token_is_190_463(client):
    expired = mint(client, age_hours=61 * 24, expires_in_days=-1)
    err = expect_graph_error(refresh(client, expired), 190, 463)
    assert err["message"].startswith("Error validating access token: Session has expired on")
    expect_graph_error(me(client, expired), 190, 463)


def test_a_revoked_users_tokens_answer_190_460_and_a_new_login_works(client):
    old = mint(client, "acme_bakery")
    other = mint(client, "second_shop")
    assert control(client, "revoke", username="ACME_bakery").status_code == 200

    err = expect_graph_error(refresh(client, old), 190, 460)
    assert "changed their password" in err["message"]
    expect_graph_error(me(client, old), 190, 460)
    assert refresh(client, other).status_code == 200
    # A token issued after the revocation (even within the same second) is good.
    assert me(client, long_token(client, "acme_bakery")).status_code == 200


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"grant_type": "ig_exchange_token"}, 100),
        ({"grant_type": ""}, 100),
        ({"access_token": "IGAAnot.a.token"}, 190),
        ({"access_token": "EAAfacebook"}, 190),
    ],
)
def test_refresh_refuses_bad_requests(client, params, code):
    query = {"grant_type": "ig_refresh_token", "access_token": mint(client), **params}
    expect_graph_error(client.get("/sandbox/refresh_access_token", query), code)


def test_refresh_refuses_a_short_lived_token(client):
    expect_graph_error(refresh(client, short_token(client)), 190)


# --- /me -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sandbox/me", "/sandbox/v21.0/me", "/sandbox/v25.0/me"])
def test_me_is_flat_by_default_versioned_or_not(client, path):
    token = mint(client, "acme_bakery")

    resp = me(client, token, path)

    assert resp.status_code == 200
    assert resp["Access-Control-Allow-Origin"] == "*"
    body = resp.json()
    assert body["user_id"] == tokens.user_id_for("acme_bakery")
    assert body["id"] == tokens.app_scoped_id_for("acme_bakery")
    assert body["id"] != body["user_id"]
    assert body["username"] == "acme_bakery"
    assert body["account_type"] == "BUSINESS"
    assert body["media_count"] == 12
    assert isinstance(body["user_id"], str)
    assert urlsplit(body["profile_picture_url"]).path == "/sandbox/media/avatar-acme_bakery.svg"


@pytest.mark.parametrize("path", ["/sandbox/me", "/sandbox/v21.0/me"])
def test_me_is_data_wrapped_in_the_documented_shape(client, path):
    control(client, "shape", shape="documented")

    body = me(client, mint(client), path, fields="user_id,username").json()

    assert body == {
        "data": [
            {
                "user_id": tokens.user_id_for("acme_bakery"),
                "username": "acme_bakery",
                "id": tokens.app_scoped_id_for("acme_bakery"),
            }
        ]
    }


def test_me_returns_only_the_fields_asked_for_plus_id(client):
    token = mint(client)
    assert set(me(client, token, fields="username").json()) == {"username", "id"}
    assert set(me(client, token, fields=" user_id , account_type,bogus ").json()) == {
        "user_id",
        "account_type",
        "id",
    }
    assert len(me(client, token).json()) == 9  # no fields: everything


def test_me_accepts_a_short_lived_token(client):
    assert me(client, short_token(client)).status_code == 200


@pytest.mark.parametrize("token", ["", "garbage", "IGAAforged.signature"])
def test_me_without_a_valid_token_is_190(client, token):
    err = expect_graph_error(me(client, token), 190)
    assert "Cannot parse access token" in err["message"]


def test_a_token_signed_with_another_key_is_refused(client, monkeypatch):
    monkeypatch.setenv("SANDBOX_SIGNING_KEY", "another-sandbox-instance")
    foreign = tokens.mint(username="acme_bakery")
    monkeypatch.delenv("SANDBOX_SIGNING_KEY")
    expect_graph_error(me(client, foreign), 190)


# --- /me/media (the feed's own tests: tests/sandbox/test_sandbox_feed.py) --------------------

FEED_FIELDS = "id,media_type,media_url,thumbnail_url,permalink,caption,timestamp,username"


def test_media_pages_to_the_end_following_next(client):
    token = mint(client)
    resp = client.get(
        "/sandbox/v21.0/me/media",
        {"fields": FEED_FIELDS, "limit": 5, "access_token": token},
    )
    pages = []
    while True:
        assert resp.status_code == 200
        assert resp["Access-Control-Allow-Origin"] == "*"
        body = resp.json()
        pages.append(body)
        nxt = body["paging"].get("next")
        if not nxt:
            break
        # next embeds the token and keeps the fields, the limit and the version, and
        # names the IG user's edge, like Instagram's.
        q = parse_qs(urlsplit(nxt).query)
        assert q["access_token"] == [token]
        assert q["limit"] == ["5"]
        assert q["fields"] == [FEED_FIELDS]
        assert q["after"] == [body["paging"]["cursors"]["after"]]
        assert urlsplit(nxt).path == f"/sandbox/v21.0/{tokens.user_id_for('acme_bakery')}/media"
        resp = client.get(relative(nxt))

    assert [len(p["data"]) for p in pages] == [5, 5, 2]
    assert "next" not in pages[-1]["paging"]
    assert set(pages[-1]["paging"]["cursors"]) == {"before", "after"}
    assert "previous" not in pages[0]["paging"] and "previous" in pages[1]["paging"]
    items = [m for p in pages for m in p["data"]]
    assert len({m["id"] for m in items}) == 12
    timestamps = [m["timestamp"] for m in items]
    assert timestamps == sorted(timestamps, reverse=True)  # newest first
    first = items[0]
    assert set(first) >= {"id", "media_type", "media_url", "permalink", "timestamp", "username"}
    assert first["media_type"] == "IMAGE"
    assert first["username"] == "acme_bakery"
    assert datetime.strptime(first["timestamp"], "%Y-%m-%dT%H:%M:%S%z").tzinfo == UTC
    assert datetime.fromisoformat(first["timestamp"]) < datetime.now(UTC) - timedelta(days=1)


def test_media_is_the_same_for_both_shapes_and_a_large_limit_takes_all(client):
    token = mint(client)
    observed = client.get("/sandbox/me/media", {"access_token": token, "limit": 50}).json()
    control(client, "shape", shape="documented")
    documented = client.get("/sandbox/me/media", {"access_token": token, "limit": 50}).json()

    assert len(observed["data"]) == 12
    assert "next" not in observed["paging"]
    assert [m["id"] for m in documented["data"]] == [m["id"] for m in observed["data"]]


def test_media_without_fields_answers_ids_only_25_per_page(client):
    control(client, "feed", username="acme_bakery", count=30)
    body = client.get("/sandbox/me/media", {"access_token": mint(client)}).json()
    assert len(body["data"]) == 25  # Graph's usual default page
    assert {tuple(m) for m in body["data"]} == {("id",)}
    assert "next" in body["paging"]


def test_media_after_the_last_cursor_is_an_empty_last_page(client):
    token = mint(client)
    last = client.get("/sandbox/me/media", {"access_token": token, "limit": 12}).json()
    resp = client.get(
        "/sandbox/me/media", {"access_token": token, "after": last["paging"]["cursors"]["after"]}
    )
    assert resp.json() == {"data": []}


def test_media_refuses_a_non_numeric_limit_and_a_bad_token(client):
    expect_graph_error(
        client.get("/sandbox/me/media", {"access_token": mint(client), "limit": "x"}), 100
    )
    expect_graph_error(client.get("/sandbox/me/media", {"access_token": "nope"}), 190)


def test_each_user_has_their_own_media(client):
    a = client.get("/sandbox/me/media", {"access_token": mint(client, "acme_bakery")}).json()
    b = client.get(
        "/sandbox/me/media", {"access_token": mint(client, "second_shop"), "fields": "username"}
    ).json()
    assert not {m["id"] for m in a["data"]} & {m["id"] for m in b["data"]}
    assert {m["username"] for m in b["data"]} == {"second_shop"}


def test_media_pictures_are_jpegs_on_the_sandbox_cdn_and_avatars_svg(client):
    body = client.get(
        "/sandbox/me/media", {"access_token": mint(client), "limit": 2, "fields": FEED_FIELDS}
    ).json()
    for url in (m.get("thumbnail_url") or m["media_url"] for m in body["data"]):
        parts = urlsplit(url)
        assert parts.netloc == "testserver"
        assert parts.path.startswith("/sandbox/cdn/acme_bakery/")
        img = client.get(relative(url))
        assert img.status_code == 200
        assert img["Content-Type"] == "image/jpeg"
        assert img.content.startswith(b"\xff\xd8\xff")

    profile = me(client, mint(client)).json()
    parts = urlsplit(profile["profile_picture_url"])
    img = client.get(parts.path)
    assert img.status_code == 200
    assert img["Content-Type"] == "image/svg+xml"
    assert img["Access-Control-Allow-Origin"] == "*"
    assert img.content.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert img.content.rstrip().endswith(b"</svg>")


def test_an_image_name_cannot_inject_markup(client):
    assert client.get("/sandbox/media/a<b>.svg").status_code == 404
    img = client.get("/sandbox/media/plain-name_1.svg")
    assert b"plain-name_1" in img.content


# --- CORS ----------------------------------------------------------------------------------------


GRAPH_PATHS = [
    "me",
    "v21.0/me",
    "v21.0/me/media",
    "access_token",
    "refresh_access_token",
    "oauth/access_token",
]


@pytest.mark.parametrize("path", GRAPH_PATHS)
def test_graph_endpoints_answer_options_for_any_origin(client, path):
    # The sandbox's own answer. (In the agent's URLconf django-cors-headers answers
    # real preflights, those with Access-Control-Request-Method, before any view:
    # see the standalone test below.)
    resp = client.options(f"/sandbox/{path}", HTTP_ORIGIN="https://shop.example")
    assert resp.status_code == 204
    assert resp["Access-Control-Allow-Origin"] == "*"
    assert set(resp["Access-Control-Allow-Methods"].replace(" ", "").split(",")) >= {"GET"}
    assert state.calls() == dict.fromkeys(state.ENDPOINTS, 0)  # a preflight is not a call


def test_cors_is_open_on_errors_and_scripted_failures_too(client):
    assert me(client, "nope")["Access-Control-Allow-Origin"] == "*"
    for kind in ("http500", "http503", "non_json", "slow:0"):
        control(client, "fail", endpoint="me", failures=[kind])
        assert me(client, mint(client))["Access-Control-Allow-Origin"] == "*", kind
    assert client.post("/sandbox/me")["Access-Control-Allow-Origin"] == "*"  # 405


# --- scripted failures ---------------------------------------------------------------------------

# (kind, HTTP status, Graph code, subcode) for the kinds that answer a Graph error.
GRAPH_FAILURES = [
    ("error190", 400, 190, None),
    *[(f"error190_{sub}", 400, 190, sub) for sub in (458, 459, 460, 463, 464, 467, 492)],
    ("error102", 400, 102, None),
    ("rate_limit", 400, 4, None),
    ("rate_limit_17", 400, 17, None),
    ("transient1", 500, 1, None),
    ("transient2", 503, 2, None),
    ("permission10", 400, 10, None),
    ("config3", 400, 3, None),
    ("config100", 400, 100, None),
    ("too_young", 400, 100, None),
]


@pytest.mark.parametrize(("kind", "status", "code", "subcode"), GRAPH_FAILURES)
def test_each_graph_failure_kind_answers_its_error_once(client, kind, status, code, subcode):
    token = mint(client)
    assert control(client, "fail", endpoint="me", failures=[kind]).json() == {"ok": True}

    err = expect_graph_error(me(client, token), code, subcode, status=status)

    assert me(client, token).status_code == 200  # consumed
    assert err["message"]
    if kind == "error190_460":
        assert "changed their password" in err["message"]
    if kind == "error190_463":
        assert "Session has expired" in err["message"]
    if kind == "transient2":
        assert err["is_transient"] is True
    if kind == "config100":
        assert err["message"] == "Unsupported request - method type: get"
    if kind == "too_young":
        assert "24 hours" in err["message"]


@pytest.mark.parametrize(("kind", "code"), [("rate_limit", 4), ("rate_limit_17", 17)])
def test_rate_limits_carry_the_business_use_case_usage_header(client, kind, code):
    control(client, "fail", endpoint="refresh", failures=[kind])

    resp = refresh(client, mint(client))

    assert graph_error(resp)["code"] == code
    usage = json.loads(resp["X-Business-Use-Case-Usage"])
    [(account, [entry])] = usage.items()
    assert account.isdigit()
    assert entry["type"] == "instagram"
    assert entry["call_count"] >= 100
    assert entry["estimated_time_to_regain_access"] == 1  # minutes


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [("http500", 500, "text/html"), ("http503", 503, "text/plain"), ("non_json", 200, "text/html")],
)
def test_non_json_failures(client, kind, status, content_type):
    control(client, "fail", endpoint="refresh", failures=[kind])

    resp = refresh(client, mint(client))

    assert resp.status_code == status
    assert resp["Content-Type"].startswith(content_type)
    with pytest.raises(ValueError):
        json.loads(resp.content)


def test_empty_json_is_an_empty_object(client):
    control(client, "fail", endpoint="long_lived", failures=["empty_json"])
    resp = client.get(
        "/sandbox/access_token",
        {"grant_type": "ig_exchange_token", "client_secret": "s", "access_token": "x"},
    )
    assert (resp.status_code, resp.json()) == (200, {})


def test_invalid_code_answers_the_flat_code_exchange_error(client):
    code = new_code(client)
    control(client, "fail", endpoint="code_exchange", failures=["invalid_code"])

    expect_flat_error(exchange(client, code), "Matching code was not found or was already used")
    assert exchange(client, code).status_code == 200  # the scripted refusal did not use it


def test_slow_answers_late_and_then_normally(client):
    control(client, "fail", endpoint="me", failures=["slow:0.3"])
    token = mint(client)

    started = time.monotonic()
    resp = me(client, token)
    elapsed = time.monotonic() - started

    assert resp.status_code == 200
    assert resp.json()["username"] == "acme_bakery"
    assert elapsed >= 0.3


def test_failures_on_the_authorize_window(client):
    control(client, "fail", endpoint="authorize", failures=["http503"])
    assert client.get("/sandbox/oauth/authorize", AUTHORIZE).status_code == 503
    assert client.get("/sandbox/oauth/authorize", AUTHORIZE).status_code == 200
    assert state.calls()["authorize"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "me", "failures": ["error191"]},
        {"endpoint": "me", "failures": ["http500", "bogus"]},
        {"endpoint": "me", "failures": ["slow:abc"]},
        {"endpoint": "me", "failures": ["slow:-1"]},
        {"endpoint": "me", "failures": ["slow:nan"]},
        {"endpoint": "me", "failures": [5]},
        {"endpoint": "me", "failures": "http500"},
        {"endpoint": "nowhere", "failures": ["http500"]},
    ],
)
def test_fail_refuses_what_it_cannot_play(client, body):
    resp = control(client, "fail", **body)
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert me(client, mint(client)).status_code == 200  # nothing was queued


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("mode", {"endpoint": "me", "failure": "typo"}),
        ("mode", {"endpoint": "me", "failure": 500}),
        ("delay", {"endpoint": "me", "seconds": "NaN"}),
        ("delay", {"endpoint": "me", "seconds": -1}),
        ("delay", {"endpoint": "me", "seconds": "soon"}),
        ("shape", {"shape": "flat"}),
        ("revoke", {}),
        ("explode", {}),
    ],
)
def test_control_refuses_bad_settings(client, action, body):
    resp = control(client, action, **body)
    assert resp.status_code in (400, 404)
    assert "error" in resp.json()
    assert state.next_failure("me") is None
    assert state.delay_for("me") == 0
    assert state.shape() == "observed"


# --- queue vs mode vs delay, calls, journal, reset -----------------------------------------------


def test_queued_failures_come_first_then_the_mode_until_cleared(client):
    token = mint(client)
    control(client, "fail", endpoint="refresh", failures=["http500", "http503"])
    control(client, "mode", endpoint="refresh", failure="error190")

    statuses = [refresh(client, token).status_code for _ in range(2)]
    codes = [graph_error(refresh(client, token))["code"] for _ in range(2)]
    control(client, "mode", endpoint="refresh", failure=None)

    assert statuses == [500, 503]
    assert codes == [190, 190]
    assert refresh(client, token).status_code == 200
    assert me(client, token).status_code == 200  # other endpoints were never affected


def test_the_star_endpoint_applies_everywhere_after_the_endpoints_own_queue(client):
    token = mint(client)
    control(client, "fail", endpoint="*", failures=["http503"])
    control(client, "fail", endpoint="me", failures=["http500"])

    assert me(client, token).status_code == 500  # own queue first
    assert client.get("/sandbox/me/media", {"access_token": token}).status_code == 503
    assert me(client, token).status_code == 200

    control(client, "mode", endpoint="*", failure="transient2")
    control(client, "mode", endpoint="media", failure="config3")
    assert graph_error(me(client, token))["code"] == 2
    assert graph_error(refresh(client, token))["code"] == 2
    assert graph_error(client.get("/sandbox/me/media", {"access_token": token}))["code"] == 3
    control(client, "mode", endpoint="*", failure=None)
    assert me(client, token).status_code == 200


def test_a_delay_slows_every_call_of_its_endpoint_until_cleared(client):
    token = mint(client)
    control(client, "delay", endpoint="me", seconds=0.3)
    control(client, "fail", endpoint="me", failures=["error190"])

    started = time.monotonic()
    first = me(client, token)
    second = me(client, token)
    delayed = time.monotonic() - started
    assert graph_error(first)["code"] == 190  # a delay does not replace a failure
    assert second.status_code == 200
    assert delayed >= 0.6

    control(client, "delay", endpoint="me", seconds=0)
    started = time.monotonic()
    me(client, token)
    assert time.monotonic() - started < 0.3
    assert state.delay_for("me") == 0


def test_a_star_delay_applies_when_the_endpoint_has_none(client):
    control(client, "delay", endpoint="*", seconds=0.2)
    control(client, "delay", endpoint="media", seconds=0.01)
    assert state.delay_for("refresh") == 0.2
    assert state.delay_for("media") == 0.01
    started = time.monotonic()
    refresh(client, mint(client))
    assert time.monotonic() - started >= 0.2


def test_calls_are_counted_per_endpoint_failures_included(client):
    token = long_token(client)  # authorize POST is the consent, not a window view
    client.get("/sandbox/oauth/authorize", AUTHORIZE)
    control(client, "fail", endpoint="me", failures=["http500"])
    me(client, token)
    me(client, token)
    client.get("/sandbox/me/media", {"access_token": token})
    refresh(client, token)
    client.options("/sandbox/me")

    resp = client.get("/sandbox/_control/calls")

    assert resp.json() == {
        "authorize": 1,
        "code_exchange": 1,
        "long_lived": 1,
        "refresh": 1,
        "me": 2,
        "media": 1,
        "cdn": 0,
    }


def test_the_journal_records_what_each_call_sent_with_credentials_fingerprinted(client):
    token = mint(client)
    refresh(client, token)
    client.post("/sandbox/refresh_access_token?grant_type=ig_refresh_token&access_token=" + token)
    exchange(client, "AQDsome-code", client_secret="shh-secret")

    resp = client.get("/sandbox/_control/requests")

    journal = resp.json()["requests"]
    assert [(e["endpoint"], e["method"], e["path"]) for e in journal] == [
        ("refresh", "GET", "/sandbox/refresh_access_token"),
        ("refresh", "POST", "/sandbox/refresh_access_token"),
        ("code_exchange", "POST", "/sandbox/oauth/access_token"),
    ]
    assert journal[0]["query"] == {
        "grant_type": ["ig_refresh_token"],
        "access_token": [state.fingerprint(token)],
    }
    assert journal[0]["form"] == {}
    assert journal[2]["form"] == {
        "client_id": [CLIENT_ID],
        "client_secret": [state.fingerprint("shh-secret")],
        "grant_type": ["authorization_code"],
        "redirect_uri": [REDIRECT_URI],
        "code": [state.fingerprint("AQDsome-code")],
    }
    assert journal[2]["content_type"] == "multipart/form-data"
    text = resp.content.decode()
    for secret in (token, "shh-secret", "AQDsome-code"):
        assert secret not in text


def test_the_journal_keeps_the_last_calls_only(client, monkeypatch):
    monkeypatch.setattr(state, "JOURNAL_SIZE", 3)
    for i in range(5):
        client.get("/sandbox/me", {"fields": str(i)})
    assert [e["query"]["fields"] for e in state.journal()] == [["2"], ["3"], ["4"]]


def test_reset_forgets_everything(client):
    token = mint(client)
    refresh(client, token)
    control(client, "fail", endpoint="me", failures=["http500"])
    control(client, "mode", endpoint="refresh", failure="error190")
    control(client, "delay", endpoint="*", seconds=5)
    control(client, "shape", shape="documented")
    control(client, "revoke", username="acme_bakery")
    assert state.calls()["refresh"] == 1

    assert control(client, "reset").json() == {"ok": True}

    assert state.calls() == dict.fromkeys(state.ENDPOINTS, 0)
    assert state.journal() == []
    started = time.monotonic()
    body = me(client, token).json()
    assert time.monotonic() - started < 1
    assert "data" not in body and body["username"] == "acme_bakery"
    assert refresh(client, token).status_code == 200


def test_mint_makes_a_token_of_any_age(client):
    resp = control(client, "mint", username="corner_cafe", age_hours=72, expires_in_days=3)
    body = resp.json()
    parsed = tokens.verify(body["access_token"])
    assert parsed.username == "corner_cafe"
    assert parsed.kind == "long"
    assert time.time() - parsed.issued_at == pytest.approx(72 * 3600, abs=5)
    assert parsed.expires_at - time.time() == pytest.approx(3 * 86400, abs=5)
    assert body["user_id"] == tokens.user_id_for("corner_cafe")
    assert body["expires_at"] == parsed.expires_at
    # By default a minted token is 48 h old with the rest of its 60 days to live.
    default = tokens.verify(control(client, "mint").json()["access_token"])
    assert default.expires_at - default.issued_at == pytest.approx(SIXTY_DAYS, abs=1)


# --- the standalone server, over real HTTP -------------------------------------------------------


def test_standalone_server_plays_the_whole_flow_over_http(sandbox_process):
    base = sandbox_process.base_url
    sandbox_process.shape("documented")

    flow = oauth_over_http(base, authorize=AUTHORIZE, username="second_shop", client_secret="x")

    assert flow.page.status_code == 200
    assert "SANDBOX Instagram" in flow.page.text
    assert flow.consent.status_code == 302
    assert flow.consent.headers["Location"].endswith("#_")
    assert flow.exchanged.json()["data"][0]["access_token"] == flow.short  # documented shape
    profile, media = flow.profile, flow.media
    assert profile.json()["data"][0]["username"] == "second_shop"
    assert profile.headers["Access-Control-Allow-Origin"] == "*"
    image = flow.http.get(media.json()["data"][0]["media_url"], timeout=10)
    assert image.url.startswith(base + "/cdn/second_shop/")
    assert image.headers["Content-Type"] == "image/jpeg"
    assert sandbox_process.calls() == {
        "authorize": 1,
        "code_exchange": 1,
        "long_lived": 1,
        "refresh": 0,
        "me": 1,
        "media": 1,
        "cdn": 1,
    }


def test_standalone_server_plays_scripted_failures_and_resets(sandbox_process):
    token = sandbox_process.mint(age_hours=30)["access_token"]
    sandbox_process.fail("refresh", ["error190_463"])
    url = f"{sandbox_process.base_url}/refresh_access_token"
    params = {"grant_type": "ig_refresh_token", "access_token": token}

    first = requests.get(url, params=params, timeout=10)
    second = requests.get(url, params=params, timeout=10)
    assert first.json()["error"]["error_subcode"] == 463
    assert second.status_code == 200
    sandbox_process.mode("refresh", "http503")
    assert requests.get(url, params=params, timeout=10).status_code == 503
    assert requests.post(url, data=params, timeout=10).status_code == 503  # the mode comes first
    sandbox_process.reset()
    post = requests.post(url, data=params, timeout=10)
    assert post.json()["error"]["message"] == "Unsupported request - method type: post"
    assert sandbox_process.calls()["refresh"] == 1


def test_standalone_server_answers_real_browser_preflights(sandbox_process):
    http = requests.Session()
    for path in GRAPH_PATHS:
        resp = http.options(
            f"{sandbox_process.base_url}/{path}",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=10,
        )
        assert resp.status_code == 204, path
        assert resp.headers["Access-Control-Allow-Origin"] == "*", path
        assert "GET" in resp.headers["Access-Control-Allow-Methods"]
        assert resp.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    assert set(sandbox_process.calls().values()) == {0}
