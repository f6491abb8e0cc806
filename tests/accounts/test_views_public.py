"""The public token endpoints: URLs, content types, errors, CORS, ETag/304,
Cache-Control, the cache (no query when warm, invalidated by writes) and hostile
``?const=`` / ``?callback=`` values."""

import dataclasses
import json
import re
import shutil
import subprocess
import uuid
from datetime import UTC, timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import token_cache
from accounts.models import AccessToken, InstagramAccount
from accounts.selectors import serving
from accounts.services.tokens import token_store
from tests.factories import make_account
from tests.served_urls import TOKEN_URLS

TOKEN = "IGAAtestLongLivedToken0000000001"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


@pytest.fixture
def acme(db):
    return make_account(username="acme_bakery", slug="acme", token=TOKEN)


def js_global(body: str, name: str = "InstagramToken"):
    """The value the snippet assigns, read back from its JSON string literal."""
    m = re.fullmatch(rf'window\["{re.escape(name)}"\] = (".*");\n', body)
    assert m, body
    return json.loads(m.group(1))


# --- URLs and content types -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/token/acme.json", "application/json"),
        ("/token/acme.js", "text/javascript; charset=utf-8"),
        ("/token/acme", "application/json"),
        ("/token/acme.txt", "text/plain; charset=utf-8"),
        ("/token.json", "application/json"),
        ("/token.js", "text/javascript; charset=utf-8"),
        ("/token", "text/plain; charset=utf-8"),
    ],
)
def test_every_token_url_serves_the_token_with_its_content_type(client, acme, url, content_type):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert TOKEN in response.content.decode()
    assert response["Vary"] == "Origin"
    assert response["Cache-Control"].startswith("public, max-age=")
    assert re.fullmatch(r'"[0-9a-f]{24}-[\w$-]+"', response["ETag"])


def test_json_has_token_account_username_expiry_and_instant_tokens_key(client, acme):
    body = client.get("/token/acme.json").json()
    assert set(body) == {"token", "account", "username", "expires_at", "Token"}
    assert body["token"] == body["Token"] == TOKEN
    assert body["account"] == "acme"
    assert body["username"] == "acme_bakery"
    expires = acme.access_token.expires_at.astimezone(UTC)
    assert body["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_plain_text_is_exactly_the_token(client, acme):
    assert client.get("/token/acme.txt").content == TOKEN.encode()
    assert client.get("/token").content == TOKEN.encode()  # Token Agent's URL


def test_instatokend_url_answers_the_same_json(client, acme):
    """instatokend's users call response.json() on /token/<account>: only the host
    changes when they switch."""
    bare = client.get("/token/acme")
    json_url = client.get("/token/acme.json")
    assert bare.status_code == 200
    assert bare["Content-Type"] == "application/json"
    assert bare.content == json_url.content
    assert bare.json()["token"] == TOKEN
    assert bare["ETag"] == json_url["ETag"]  # one representation, one tag
    assert bare["Cache-Control"] == json_url["Cache-Control"]
    assert client.get("/token/acme", HTTP_IF_NONE_MATCH=bare["ETag"]).status_code == 304


def test_js_sets_the_default_global(client, acme):
    assert js_global(client.get("/token/acme.js").content.decode()) == TOKEN


def test_js_constant_name_setting_and_const_parameter(client, acme, settings):
    settings.JS_CONSTANT_NAME = "IgToken"
    assert js_global(client.get("/token/acme.js").content.decode(), "IgToken") == TOKEN
    body = client.get("/token/acme.js", {"const": "My_Token$2"}).content.decode()
    assert js_global(body, "My_Token$2") == TOKEN


def test_an_invalid_js_constant_name_setting_is_a_server_error_in_javascript(
    client, acme, settings
):
    settings.JS_CONSTANT_NAME = "not valid"
    response = client.get("/token/acme.js")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/javascript")
    assert "JS_CONSTANT_NAME" in response.content.decode()
    assert TOKEN not in response.content.decode()


def test_head_and_other_methods(client, acme):
    head = client.head("/token/acme.json")
    assert head.status_code == 200
    assert head.content == b""
    assert head["ETag"]
    for method in (client.post, client.put, client.delete):
        response = method("/token/acme.json")
        assert response.status_code == 405
        assert "GET" in response["Allow"]


# --- The default account ----------------------------------------------------------


def test_default_is_the_first_connected_account_unless_one_is_picked(client):
    first = make_account(slug="first", token="IGAAfirstToken000000000000")
    make_account(slug="second", token="IGAAsecondToken00000000000")
    assert client.get("/token").content == b"IGAAfirstToken000000000000"
    cache.clear()
    InstagramAccount.objects.filter(slug="second").update(is_default=True)
    assert client.get("/token.json").json()["account"] == "second"
    assert first.pk < InstagramAccount.objects.get(slug="second").pk


def test_default_does_not_jump_to_another_account_when_the_first_is_broken(client):
    make_account(slug="first", status=InstagramAccount.Status.NEEDS_RECONNECT)
    make_account(slug="second")
    response = client.get("/token.json")
    assert response.status_code == 503
    assert response.json()["account"] == "first"


def test_no_account_at_all(client):
    response = client.get("/token.json")
    assert response.status_code == 404
    assert response.json()["error"] == "no_default_account"
    js = client.get("/token.js")
    assert js.status_code == 404
    assert 'window["InstagramToken"] = null;' in js.content.decode()


# --- Errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/token/nobody.json", "/token/nobody", "/token/nobody.txt", "/token/" + "x" * 300]
)
def test_unknown_account_is_404_json(client, acme, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "unknown_account"
    assert response["Cache-Control"] == "no-store"


def test_unknown_account_js_is_404_and_sets_nothing_usable(client, acme):
    response = client.get("/token/nobody.js")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/javascript")
    assert 'window["InstagramToken"] = null;' in response.content.decode()


def _needs_reconnect(account):
    account.status = InstagramAccount.Status.NEEDS_RECONNECT
    account.save()


def _disconnected(account):
    account.status = InstagramAccount.Status.DISCONNECTED
    account.save()


def _expired(account):
    AccessToken.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(1))


def _no_token(account):
    AccessToken.objects.filter(account=account).delete()


def _unreadable(account):
    AccessToken.objects.filter(account=account).update(ciphertext="gAAAAAnot-a-fernet-token")


@pytest.mark.parametrize(
    ("breaker", "error"),
    [
        (_needs_reconnect, "needs_reconnect"),
        (_disconnected, "disconnected"),
        (_expired, "token_expired"),
        (_no_token, "no_token"),
        (_unreadable, "token_unreadable"),
    ],
)
def test_an_unusable_token_is_never_served(client, acme, breaker, error):
    breaker(acme)
    cache.clear()
    for url in ("/token/acme.json", "/token/acme", "/token/acme.txt", "/token.json", "/token"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert "ETag" not in response
        body = response.json()
        assert body["error"] == error
        assert body["detail"]
        assert TOKEN not in response.content.decode()
    js = client.get("/token/acme.js")
    # 200 so that browsers run it (they skip scripts served with an error status).
    assert js.status_code == 200
    assert js["Cache-Control"] == "no-store"
    assert js["X-Tokenagent-Error"] == error
    body = js.content.decode()
    assert body.startswith('window["InstagramToken"] = null;\nconsole.error("tokenagent: ')
    assert error in body
    assert TOKEN not in body


# --- Hostile ?const= and ?callback= ---------------------------------------------------

HOSTILE = [
    "",
    ";alert(1)",
    "a;alert(1)",
    "alert(1)",
    "x(",
    "</script><script>alert(1)</script>",
    "</script>",
    "x</script>",
    "\\u0061lert",
    "\u0430lert",  # Cyrillic a
    "caf\u00e9",
    "a\u2028b",
    "a b",
    "a.b",
    "window.x",
    'a"]=1;//',
    "a']=1;//",
    "a\nb",
    "1abc",
    "-x",
    "x" * 65,
    "x" * 5000,
    "null",
    "true",
    "false",
    "let",
    "static",
    "yield",
    "await",
    "class",
    "enum",
    "implements",
    "package",
    "protected",
    "interface",
    "private",
    "public",
    "eval",
    "arguments",
    "undefined",
    "NaN",
    "Infinity",
    "location",
    "window",
    "document",
    "top",
    "__proto__",
    "constructor",
    "<img src=x onerror=alert(1)>",
    "${alert(1)}",
    "a&b",
    "%3Cscript%3E",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_const_is_refused_and_never_reflected(client, acme, value):
    response = client.get("/token/acme.js", {"const": value})
    assert response.status_code == 400
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in response
    body = response.content.decode()
    assert re.fullmatch(r'console\.error\("tokenagent: [^"\\<>&]*"\);\n', body), body
    if value:
        assert value not in body
    assert TOKEN not in body


@pytest.mark.parametrize("value", HOSTILE)
def test_callback_is_ignored_never_reflected(client, acme, value):
    plain = client.get("/token/acme.json")
    response = client.get("/token/acme.json", {"callback": value})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == plain.content
    js = client.get("/token/acme.js", {"callback": value})
    assert js.status_code == 200
    assert js.content == client.get("/token/acme.js").content
    assert js_global(js.content.decode()) == TOKEN


@pytest.mark.parametrize(
    "name", ["InstagramToken", "_", "$", "$x", "a1", "IG_TOKEN", "x" * 64, "nullish", "letter"]
)
def test_valid_names_are_accepted(client, acme, name):
    response = client.get("/token/acme.js", {"const": name})
    assert response.status_code == 200
    assert js_global(response.content.decode(), name) == TOKEN


HOSTILE_TOKEN = 'IGAA</script><script>alert("x")</script>&\u2028\u2029\'"\\end'


def test_token_is_embedded_as_an_escaped_json_string_literal(client):
    make_account(slug="odd", token=HOSTILE_TOKEN)
    body = client.get("/token/odd.js").content.decode()
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in body
    assert "\\u003C/script\\u003E" in body
    assert "\\u2028" in body and "\\u2029" in body
    assert js_global(body) == HOSTILE_TOKEN


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_snippet_runs_twice_without_throwing_and_sets_the_token(
    client, django_capture_on_commit_callbacks
):
    make_account(slug="odd", token=HOSTILE_TOKEN)
    body = client.get("/token/odd.js").content.decode()
    # Committed (its receivers drop the cached set of known names), as in production.
    with django_capture_on_commit_callbacks(execute=True):
        broken = make_account(slug="broken", status=InstagramAccount.Status.NEEDS_RECONNECT)
    broken_body = client.get("/token/broken.js").content.decode()
    script = (
        "const vm = require('vm');"
        "const logged = [];"
        "const ctx = {console: {error: (m) => logged.push(m)}}; ctx.window = ctx;"
        "vm.createContext(ctx);"
        f"const ok = {json.dumps(body)}, broken = {json.dumps(broken_body)};"
        "vm.runInContext(ok, ctx); vm.runInContext(ok, ctx);"
        "const token = ctx.InstagramToken;"
        "vm.runInContext(broken, ctx); vm.runInContext(broken, ctx);"
        "console.log(JSON.stringify({token, after: ctx.InstagramToken, logged}));"
    )
    out = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, check=True, timeout=30
    )
    result = json.loads(out.stdout)
    assert result["token"] == HOSTILE_TOKEN
    assert result["after"] is None
    assert len(result["logged"]) == 2
    assert "needs_reconnect" in result["logged"][0]
    assert broken.slug == "broken"


# --- CORS -------------------------------------------------------------------------


def test_unset_allowed_domains_lets_any_site_load_it(client, acme):
    for url in ("/token/acme.json", "/token/acme.js", "/token/acme"):
        response = client.get(url, HTTP_ORIGIN="https://anyone.example")
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == "https://anyone.example"
        assert response["Vary"] == "Origin"
    no_origin = client.get("/token/acme.json")
    assert "Access-Control-Allow-Origin" not in no_origin
    assert no_origin["Vary"] == "Origin"


def test_every_listed_domain_works_in_token_agent_form(client, acme, settings):
    settings.ALLOWED_DOMAINS = "shop.example blog.example www.third.example"
    for origin in ("https://shop.example", "https://blog.example", "https://www.third.example"):
        response = client.get("/token/acme.json", HTTP_ORIGIN=origin)
        assert response["Access-Control-Allow-Origin"] == origin
        assert response["Vary"] == "Origin"
    for origin in ("http://shop.example", "https://evil.example", "null"):
        response = client.get("/token/acme.json", HTTP_ORIGIN=origin)
        assert response.status_code == 200  # CORS is the browser's gate
        assert "Access-Control-Allow-Origin" not in response
        assert response["Vary"] == "Origin"


def test_full_origins_comma_separated(client, acme, settings):
    settings.ALLOWED_DOMAINS = "https://shop.example,http://localhost:8080"
    ok = client.get("/token/acme.json", HTTP_ORIGIN="http://localhost:8080")
    assert ok["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "Access-Control-Allow-Origin" not in client.get(
        "/token/acme.json", HTTP_ORIGIN="http://localhost:9090"
    )


def test_per_account_list_narrows(client, settings):
    settings.ALLOWED_DOMAINS = "shop.example blog.example"
    make_account(slug="narrow", allowed_domains="blog.example other.example")
    make_account(slug="wide")
    assert "Access-Control-Allow-Origin" not in client.get(
        "/token/narrow.json", HTTP_ORIGIN="https://shop.example"
    )
    assert "Access-Control-Allow-Origin" not in client.get(
        "/token/narrow.json", HTTP_ORIGIN="https://other.example"
    )
    narrow = client.get("/token/narrow.json", HTTP_ORIGIN="https://blog.example")
    assert narrow["Access-Control-Allow-Origin"] == "https://blog.example"
    wide = client.get("/token/wide.json", HTTP_ORIGIN="https://shop.example")
    assert wide["Access-Control-Allow-Origin"] == "https://shop.example"


def test_per_account_list_restricts_even_when_global_is_unset(client):
    make_account(slug="narrow", allowed_domains="blog.example")
    assert "Access-Control-Allow-Origin" not in client.get(
        "/token/narrow.json", HTTP_ORIGIN="https://shop.example"
    )
    assert client.get("/token/narrow.js", HTTP_REFERER="https://shop.example/").status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "/token/acme.json",
        "/token/acme.js",
        "/token/acme",
        "/token.json",
        # The feed URLs: the same rules (tests/accounts/test_views_feed.py).
        "/feed/acme.json",
        "/feed/acme/media",
        "/feed.json",
        "/feed/media",
        "/feed/nobody.json",
    ],
)
def test_preflight_is_answered(client, acme, settings, url):
    settings.ALLOWED_DOMAINS = "shop.example"
    response = client.options(
        url,
        HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="if-none-match",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "If-None-Match" in response["Access-Control-Allow-Headers"]
    assert response["Vary"] == "Origin"
    assert response.content == b""
    refused = client.options(
        url, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert refused.status_code == 204
    assert "Access-Control-Allow-Origin" not in refused


def test_error_responses_carry_cors_so_sites_can_read_them(client, settings):
    settings.ALLOWED_DOMAINS = "shop.example"
    make_account(slug="broken", status=InstagramAccount.Status.NEEDS_RECONNECT)
    response = client.get("/token/broken.json", HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 503
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),  # names no site: refused like an unlisted one
        ({"HTTP_REFERER": "https://shop.example/blog/post?x=1"}, 200),
        ({"HTTP_ORIGIN": "https://shop.example"}, 200),
        ({"HTTP_REFERER": "https://evil.example/"}, 403),
        ({"HTTP_ORIGIN": "https://evil.example"}, 403),
        ({"HTTP_ORIGIN": "null"}, 403),
        ({"HTTP_REFERER": "https://shop.example.evil.net/"}, 403),
        ({"HTTP_ORIGIN": "https://shop.example", "HTTP_REFERER": "https://evil.example/"}, 403),
        ({"HTTP_REFERER": "http://testserver/accounts/acme/preview/"}, 200),  # the agent itself
    ],
)
def test_js_refuses_pages_of_unlisted_sites_once_a_list_is_set(
    client, acme, settings, headers, status
):
    settings.ALLOWED_DOMAINS = "shop.example"
    response = client.get("/token/acme.js", **headers)
    assert response.status_code == status
    body = response.content.decode()
    if status == 403:
        assert TOKEN not in body
        assert body.startswith('console.error("tokenagent: ')
        assert response["Cache-Control"] == "no-store"
    else:
        assert js_global(body) == TOKEN


def test_js_referer_is_not_checked_while_unrestricted(client, acme):
    response = client.get("/token/acme.js", HTTP_REFERER="https://evil.example/")
    assert response.status_code == 200
    assert client.get("/token/acme.js").status_code == 200  # no header at all


@pytest.mark.parametrize("url", ["/token/acme.js", "/token.js"])
def test_js_naming_no_site_is_refused_once_a_list_is_set(client, acme, settings, url):
    """A page can hide its address (``<script referrerpolicy="no-referrer">``, a
    no-referrer policy): a request with neither Origin nor Referer names no listed
    site, so it is refused like an unlisted one, and the console says what to allow."""
    settings.ALLOWED_DOMAINS = "shop.example"
    for const in ({}, {"const": "Other"}):
        response = client.get(url, const)
        assert response.status_code == 403
        assert response["Content-Type"] == "text/javascript; charset=utf-8"
        assert response["Cache-Control"] == "no-store"
        assert "ETag" not in response
        body = response.content.decode()
        assert TOKEN not in body
        assert re.fullmatch(r'console\.error\("tokenagent: [^"\\<>&]*"\);\n', body), body
        assert "neither Origin nor Referer" in body
        assert "strict-origin-when-cross-origin" in body


def test_a_page_hiding_its_address_is_refused_under_an_accounts_own_list(client, settings):
    make_account(slug="narrow", allowed_domains="blog.example", token=TOKEN)
    assert client.get("/token/narrow.js").status_code == 403
    assert client.get("/token/narrow.js", HTTP_REFERER="https://blog.example/").status_code == 200


def test_restricted_answers_are_private(client, acme, settings):
    """Once a list is set, what a URL answers depends on the requesting site (CORS
    headers, the ``.js`` gate reads the Referer, which ``Vary`` cannot name): no
    shared cache may keep an answer for one site and hand it to another."""
    settings.ALLOWED_DOMAINS = "shop.example"
    cases = [
        ("/token/acme.json", {"HTTP_ORIGIN": "https://shop.example"}),
        ("/token/acme.json", {}),
        ("/token/acme.js", {"HTTP_REFERER": "https://shop.example/page"}),
        ("/token/acme", {}),
        ("/token.json", {"HTTP_ORIGIN": "https://evil.example"}),
        ("/token.js", {"HTTP_ORIGIN": "https://shop.example"}),
        ("/token", {}),
    ]
    for url, headers in cases:
        response = client.get(url, **headers)
        assert response.status_code == 200, url
        assert re.fullmatch(r"private, max-age=\d+", response["Cache-Control"]), url
        assert response["Vary"] == "Origin"
        again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"], **headers)
        assert again.status_code == 304, url
        assert again["Cache-Control"] == response["Cache-Control"]


def test_an_accounts_own_list_makes_its_answers_private(client, settings):
    make_account(slug="narrow", allowed_domains="blog.example")
    make_account(slug="open")
    narrow = client.get("/token/narrow.json", HTTP_ORIGIN="https://blog.example")
    assert narrow["Cache-Control"].startswith("private, max-age=")
    assert client.get("/token/open.json")["Cache-Control"].startswith("public, max-age=")


# --- ETag, 304, Cache-Control -----------------------------------------------------------


def test_etag_and_304(client, acme):
    first = client.get("/token/acme.json", HTTP_ORIGIN="https://shop.example")
    tag = first["ETag"]
    for inm in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        response = client.get(
            "/token/acme.json", HTTP_IF_NONE_MATCH=inm, HTTP_ORIGIN="https://shop.example"
        )
        assert response.status_code == 304, inm
        assert response.content == b""
        assert response["ETag"] == tag
        assert response["Cache-Control"] == first["Cache-Control"]
        assert response["Vary"] == "Origin"
        assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    stale = client.get("/token/acme.json", HTTP_IF_NONE_MATCH='"something-else"')
    assert stale.status_code == 200


def test_etag_differs_per_variant_and_name_and_changes_with_the_token(client, acme):
    tags = {
        client.get("/token/acme.json")["ETag"],
        client.get("/token/acme.txt")["ETag"],
        client.get("/token/acme.js")["ETag"],
        client.get("/token/acme.js", {"const": "Other"})["ETag"],
    }
    assert len(tags) == 4
    old = client.get("/token/acme.json")["ETag"]
    with transaction.atomic():
        token_store(
            account=acme,
            access_token="IGAAnewToken00000000000000",
            expires_at=timezone.now() + timedelta(days=60),
        )
    cache.clear()
    assert client.get("/token/acme.json")["ETag"] != old
    assert client.get("/token/acme.json", HTTP_IF_NONE_MATCH=old).status_code == 200


def _max_age(response) -> int:
    found = re.fullmatch(r"public, max-age=(\d+)", response["Cache-Control"])
    assert found, response["Cache-Control"]
    return int(found.group(1))


def test_max_age_is_bounded_by_the_cap(client, settings):
    settings.TOKEN_CACHE_MAX_AGE = 600
    make_account(slug="fresh", token_age=timedelta(hours=1))
    assert _max_age(client.get("/token/fresh.json")) == 600


def test_max_age_is_bounded_by_the_next_scheduled_refresh(client, settings):
    settings.TOKEN_CACHE_MAX_AGE = 30 * 86400
    settings.REFRESH_FREQUENCY = "weekly"
    make_account(slug="weekly", token_age=timedelta(days=6, hours=23))
    # refresh due in one hour (7 days after issue)
    assert 3500 <= _max_age(client.get("/token/weekly.json")) <= 3600


def test_max_age_is_bounded_by_expiry_and_never_negative(
    client, settings, django_capture_on_commit_callbacks
):
    settings.TOKEN_CACHE_MAX_AGE = 30 * 86400
    make_account(slug="soon", token_age=timedelta(hours=2), expires_in=timedelta(minutes=10))
    assert 0 <= _max_age(client.get("/token/soon.json")) <= 600
    with django_capture_on_commit_callbacks(execute=True):
        make_account(slug="overdue", token_age=timedelta(days=30), expires_in=timedelta(days=30))
    assert _max_age(client.get("/token/overdue.json")) == 0


def test_next_scheduled_refresh_follows_the_refresh_rules(acme, settings):
    token = acme.access_token
    settings.REFRESH_FREQUENCY = "monthly"
    token.issued_at = timezone.now() - timedelta(hours=1)
    token.refreshed_at = None
    token.expires_at = token.issued_at + timedelta(days=60)
    # monthly: 30 days after issue
    assert serving.next_scheduled_refresh(account=acme, token=token) == token.issued_at + timedelta(
        days=30
    )
    token.expires_at = token.issued_at + timedelta(days=10)
    # ... but no later than 7 days before expiry
    assert serving.next_scheduled_refresh(
        account=acme, token=token
    ) == token.expires_at - timedelta(days=7)
    token.expires_at = token.issued_at + timedelta(days=2)
    # ... and never before the token is 24 h old
    assert serving.next_scheduled_refresh(account=acme, token=token) == token.issued_at + timedelta(
        hours=24
    )


# --- The cache: hot path and invalidation ---------------------------------------------------


def test_warm_cache_serves_without_a_database_query(client, acme, django_assert_num_queries):
    tags = {url: client.get(url)["ETag"] for url in TOKEN_URLS}
    with django_assert_num_queries(0):
        for url in TOKEN_URLS:
            assert client.get(url).status_code == 200
            assert client.get(url, HTTP_IF_NONE_MATCH=tags[url]).status_code == 304
        assert client.get("/token/acme.js", {"const": "Other"}).status_code == 200


def test_unknown_and_broken_accounts_are_cached_too(client, acme, django_assert_num_queries):
    make_account(slug="broken", status=InstagramAccount.Status.NEEDS_RECONNECT)
    client.get("/token/nobody.json")
    client.get("/token/broken.json")
    with django_assert_num_queries(0):
        assert client.get("/token/nobody.json").status_code == 404
        assert client.get("/token/broken.json").status_code == 503


def test_a_refresh_invalidates_at_once(client, acme, django_capture_on_commit_callbacks):
    assert client.get("/token/acme.json").json()["token"] == TOKEN
    assert client.get("/token.json").json()["token"] == TOKEN
    with django_capture_on_commit_callbacks(execute=True):
        token_store(
            account=acme,
            access_token="IGAArefreshedToken0000000000",
            expires_at=timezone.now() + timedelta(days=60),
            refreshed=True,
            expected_version=acme.access_token.version,
        )
    assert client.get("/token/acme.json").json()["token"] == "IGAArefreshedToken0000000000"
    assert client.get("/token.json").json()["token"] == "IGAArefreshedToken0000000000"
    assert (
        js_global(client.get("/token/acme.js").content.decode()) == "IGAArefreshedToken0000000000"
    )


def test_a_status_change_saved_through_the_orm_invalidates_at_once(
    client, acme, django_capture_on_commit_callbacks
):
    assert client.get("/token/acme.json").status_code == 200
    assert client.get("/token.js").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        acme.status = InstagramAccount.Status.DISCONNECTED
        acme.save(update_fields=["status"])
    assert client.get("/token/acme.json").status_code == 503
    assert client.get("/token.js")["X-Tokenagent-Error"] == "disconnected"
    with django_capture_on_commit_callbacks(execute=True):
        acme.status = InstagramAccount.Status.ACTIVE
        acme.save(update_fields=["status"])
    assert client.get("/token/acme.json").status_code == 200


def test_an_update_query_needs_an_explicit_invalidate(
    client, acme, django_capture_on_commit_callbacks
):
    assert client.get("/token/acme.json").status_code == 200
    InstagramAccount.objects.filter(pk=acme.pk).update(
        status=InstagramAccount.Status.NEEDS_RECONNECT
    )
    token_cache.invalidate(acme)
    assert client.get("/token/acme.json").json()["error"] == "needs_reconnect"
    assert client.get("/token.json").json()["error"] == "needs_reconnect"


def test_disconnect_by_deleting_the_token_or_account_invalidates(
    client, acme, django_capture_on_commit_callbacks
):
    make_account(slug="other")
    assert client.get("/token/acme.json").status_code == 200
    assert client.get("/token/other.json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        AccessToken.objects.get(account=acme).delete()
    assert client.get("/token/acme.json").json()["error"] == "no_token"
    with django_capture_on_commit_callbacks(execute=True):
        InstagramAccount.objects.get(slug="other").delete()
    assert client.get("/token/other.json").status_code == 404


def test_slug_rename_and_default_change_invalidate_old_copies(
    client, acme, django_capture_on_commit_callbacks
):
    second = make_account(slug="second")
    assert client.get("/token/acme.json").status_code == 200
    assert client.get("/token.json").json()["account"] == "acme"
    with django_capture_on_commit_callbacks(execute=True):
        acme.slug = "renamed"
        acme.save()
    assert client.get("/token/acme.json").status_code == 404
    assert client.get("/token/renamed.json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        second.is_default = True
        second.save()
    assert client.get("/token.json").json()["account"] == "second"


def test_a_new_account_replaces_a_cached_unknown(client, django_capture_on_commit_callbacks):
    assert client.get("/token/late.json").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        make_account(slug="late")
    assert client.get("/token/late.json").status_code == 200


def test_a_write_racing_the_fill_does_not_leave_a_stale_copy(client, acme, monkeypatch):
    """A reader builds the entry from the database, a refresh commits and
    invalidates, then the reader stores its (now stale) entry: the reader's
    second read must notice and drop it."""
    real_store = token_cache.store
    raced: list[str] = []

    def store_then_race(key, entry, **kwargs):
        real_store(key, entry, **kwargs)
        if not raced:
            raced.append(key)
            # The writer committed in the reader's window; its invalidation already ran.
            token_store(
                account=acme,
                access_token="IGAAracedToken000000000000",
                expires_at=timezone.now() + timedelta(days=60),
            )

    monkeypatch.setattr(token_cache, "store", store_then_race)
    assert client.get("/token/acme.json").json()["token"] == "IGAAracedToken000000000000"
    monkeypatch.setattr(token_cache, "store", real_store)
    assert client.get("/token/acme.json").json()["token"] == "IGAAracedToken000000000000"


def test_cache_holds_the_token_encrypted(client, acme):
    client.get("/token/acme.json")
    entry = cache.get(token_cache.key_for("acme"))
    assert isinstance(entry, serving.ServedToken)
    assert entry.state == "ok"
    assert TOKEN not in repr(entry)


def test_a_token_that_expires_while_cached_is_not_served(client, acme):
    assert client.get("/token/acme.json").status_code == 200
    key = token_cache.key_for("acme")
    entry = cache.get(key)
    cache.set(key, dataclasses.replace(entry, expires_ts=1.0))  # expired long ago
    AccessToken.objects.filter(account=acme).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/token/acme.json").json()["error"] == "token_expired"


@pytest.mark.redis
def test_hot_path_and_invalidation_on_the_real_redis(
    client, settings, django_capture_on_commit_callbacks, django_assert_num_queries
):
    import os

    if not os.environ.get("REDIS_URL", "").startswith("redis"):
        pytest.skip("REDIS_URL does not point at Redis")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": f"token-tests-{uuid.uuid4()}",
        }
    }
    slug = f"r-{uuid.uuid4().hex[:12]}"
    account = make_account(slug=slug, token=TOKEN)
    try:
        assert client.get(f"/token/{slug}.json").json()["token"] == TOKEN
        with django_assert_num_queries(0):
            assert client.get(f"/token/{slug}.json").json()["token"] == TOKEN
        with django_capture_on_commit_callbacks(execute=True):
            account.status = InstagramAccount.Status.NEEDS_RECONNECT
            account.save()
        assert client.get(f"/token/{slug}.json").status_code == 503
    finally:
        token_cache.invalidate(account)


# --- The per-process memo (TOKEN_CACHE_LOCAL_SECONDS) ---------------------------------


@pytest.fixture
def memo(settings, monkeypatch):
    """Turn the per-process memo on, with a clock the test moves."""
    settings.TOKEN_CACHE_LOCAL_SECONDS = 1.0
    token_cache.clear_local()
    clock = [1000.0]
    monkeypatch.setattr(token_cache.time, "monotonic", lambda: clock[0])
    yield clock
    token_cache.clear_local()


def test_memo_spares_the_shared_cache_and_lapses(client, acme, memo, monkeypatch):
    assert client.get("/token/acme.json").status_code == 200
    reads = []

    class Counting:
        def __getattr__(self, name):
            if name == "get":
                reads.append(name)
            return getattr(cache, name)

    monkeypatch.setattr(token_cache, "cache", Counting())
    for _ in range(5):
        assert client.get("/token/acme.json").json()["token"] == TOKEN
    assert reads == []
    # Another process changed the account and invalidated the shared cache only.
    AccessToken.objects.filter(account=acme).delete()
    cache.delete(token_cache.key_for("acme"))
    assert client.get("/token/acme.json").status_code == 200  # this process's copy, < 1 s old
    memo[0] += 1.01
    assert client.get("/token/acme.json").json()["error"] == "no_token"


def test_memo_is_dropped_at_once_by_invalidate_in_this_process(
    client, acme, memo, django_capture_on_commit_callbacks
):
    assert client.get("/token/acme.json").status_code == 200
    assert client.get("/token.json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        acme.status = InstagramAccount.Status.DISCONNECTED
        acme.save()
    assert client.get("/token/acme.json").json()["error"] == "disconnected"
    assert client.get("/token.json").json()["error"] == "disconnected"
