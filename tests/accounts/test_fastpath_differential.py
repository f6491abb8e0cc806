"""The WSGI fast path (accounts/fastpath.py) against Django: for a table of requests
(every token URL form; GET, HEAD, OPTIONS and write methods; Origin, Referer and
If-None-Match variants; hostile values; unknown accounts; unusable tokens;
ALLOWED_DOMAINS set and unset; a per-account list) both give the same status,
headers and body, byte for byte, with the cache cold and warm. Both run on
identical environs: ``FastPath(handler)`` against the plain Django WSGI handler.

Every case also says whether the fast path must answer it itself when the cache is
warm, and the test counts the requests that reached Django: a fast path that
handed everything over would fail here, not pass by agreeing with Django."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django import urls
from django.core.cache import cache
from django.utils import timezone

from accounts import token_cache
from accounts.models import AccessToken, InstagramAccount
from accounts.services.tokens import token_store
from tests.factories import make_account

pytestmark = pytest.mark.django_db

TOKEN = "IGAAdifferentialToken000000000000001"
SLUGS = ("acme", "gone", "off", "bare", "stale", "broken", "narrow", "nobody", "x" * 300)
ORIGINS = [
    None,
    "https://example.com",
    "https://www.example.org",
    "http://localhost:8080",
    "https://evil.test",
    "null",
    "https://exa mple.com",
    "https://example.com:443",
    "HTTPS://EXAMPLE.COM",
    "https://shop.example.com",
    "https://é.example.org",
]
REFERERS = [
    None,
    "https://example.com/page?x=1",
    "https://evil.test/",
    "http://127.0.0.1:8000/accounts/acme/",
    "not a url",
]


@dataclass
class Case:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str | None] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    # False: Django must answer it even with a warm cache.
    fast: bool = True

    def build(self) -> dict:
        environ = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": self.path,
            "QUERY_STRING": self.query,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.9",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_USER_AGENT": "differential/1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        environ.update(
            {
                "HTTP_" + name.upper().replace("-", "_"): value
                for name, value in self.headers.items()
            }
        )
        environ.update(self.environ)
        return {k: v for k, v in environ.items() if v is not None}


def token_paths(slug: str) -> list[str]:
    return [f"/token/{slug}", f"/token/{slug}.json", f"/token/{slug}.js", f"/token/{slug}.txt"]


PATHS = ["/token", "/token.json", "/token.js"] + [p for s in SLUGS for p in token_paths(s)]
# Each kind of URL in each state: where Origin and Referer make a difference.
VARIANT_PATHS = [
    "/token",
    "/token.js",
    "/token/acme.json",
    "/token/acme.js",
    "/token/narrow.json",
    "/token/narrow.js",
    "/token/gone.js",
    "/token/broken.txt",
    "/token/nobody.js",
    "/token/nobody.json",
]


def stack_cases(path: str) -> list[Case]:
    """What Django's stack decides around a public read (accounts/fastpath_stack.py),
    for one URL: the scheme behind the proxy, cookies, hosts, a script name."""
    return [
        # Secure behind the proxy: HSTS is added.
        Case("GET", path, headers={"X-Forwarded-Proto": "https"}),
        Case("GET", path, headers={"X-Forwarded-Proto": "https, http"}),
        Case("GET", path, headers={"X-Forwarded-Proto": "http"}),
        Case("GET", path, headers={"X-Forwarded-Proto": " https "}),
        Case("GET", path, environ={"wsgi.url_scheme": "https"}),
        # Cookies of the owner's session and CSRF: their middleware may set cookies.
        Case("GET", path, headers={"Cookie": "sessionid=abc"}, fast=False),
        Case("GET", path, headers={"Cookie": "csrftoken=short"}, fast=False),
        Case("GET", path, headers={"Cookie": "a=1; sessionid=" + "s" * 32}, fast=False),
        Case("GET", path, headers={"Cookie": "_ga=GA1.2.3; theme=dark"}),
        Case("GET", path, headers={"Cookie": ""}),
        # Hosts.
        Case("GET", path, headers={"Host": "evil.test"}, fast=False),
        Case("GET", path, headers={"Host": "localhost"}),
        Case("GET", path, headers={"Host": "127.0.0.1:8000\r\nX: y"}, fast=False),
        Case("GET", path, headers={"Host": None}, fast=False),
        Case("GET", path, headers={"Host": ""}, fast=False),
        # Mounted under a prefix, or rewritten: Django's business.
        Case("GET", path, environ={"SCRIPT_NAME": "/agent"}, fast=False),
        Case("GET", path, environ={"SCRIPT_URL": path}, fast=False),
        Case("GET", path, headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.1"}),
    ]


def url_cases(path: str, tag: str | None, *, variants: bool) -> list[Case]:
    """Every method and the Origin, Referer and If-None-Match (``tag``: its ETag)
    variants of one public URL; every Origin and Referer when ``variants``."""
    cases: list[Case] = []
    for method in ("GET", "HEAD", "OPTIONS"):
        cases.append(Case(method, path))
    for method in ("POST", "PUT", "DELETE", "PATCH", "get", "TRACE"):
        cases.append(Case(method, path, fast=False))
    for origin in ORIGINS[1:] if variants else ORIGINS[1:3]:
        cases.append(Case("GET", path, headers={"Origin": origin}))
        cases.append(Case("OPTIONS", path, headers={"Origin": origin}))
    for referer in REFERERS[1:] if variants else REFERERS[1:2]:
        cases.append(Case("GET", path, headers={"Referer": referer}))
        cases.append(
            Case("GET", path, headers={"Referer": referer, "Origin": "https://example.com"})
        )
    if tag:
        for value in (tag, f"W/{tag}", f'"nope", {tag}', "*", '"nope"', tag[:-2] + '"'):
            cases.append(Case("GET", path, headers={"If-None-Match": value}))
            cases.append(Case("HEAD", path, headers={"If-None-Match": value}))
        cases.append(
            Case("GET", path, headers={"If-None-Match": tag, "Origin": "https://example.com"})
        )
    return cases


def table(etags: dict[str, str]) -> list[Case]:
    cases: list[Case] = []
    for path in PATHS:
        cases += url_cases(path, etags.get(path), variants=path in VARIANT_PATHS)
    js = "/token/acme.js"
    for query in (
        "const=MyToken",
        "const=",
        "const=1bad",
        "const=window",
        "const=a%3Balert(1)",
        "const=A&const=B",
        "const=%E2%80%A8",
        "callback=evil",
        "v=123",
        "const=" + "a" * 500,
        "%ZZ=%",
    ):
        cases.append(Case("GET", js, query=query))
        cases.append(Case("GET", "/token.js", query=query, headers={"Origin": "https://evil.test"}))
        cases.append(Case("GET", "/token/acme.json", query=query))
    cases.append(Case("GET", js, query="&".join(f"f{i}=1" for i in range(1200)), fast=False))
    for path in ("/token/acme.json", js):
        cases += stack_cases(path)
    for path in (
        "/token/",
        "/token/acme.json/",
        "/tokens",
        "/token/a/b.json",
        "/token/acme.json\n",
        "/token/acme.JSON",
        "/token/ACME.json",
        "/token/%E2%82%AC.json",
        "/token/\xe2\x82\xac.json",
        "/token/acme.json.js",
        "/token/acme.jsonp",
        "/token.txt",
        "/token/.json",
    ):
        # Only /token/ACME.json is a token URL (an unknown account): Django's slugs
        # are case-sensitive.
        cases.append(Case("GET", path, fast=path == "/token/ACME.json"))
    return cases


def _cookie(value: str) -> str:
    value = re.sub(r"csrftoken=\w+", "csrftoken=<random>", value)
    return re.sub(r"expires=[^;]+", "expires=<a year on>", value)


def call(app, environ: dict) -> tuple[str, list, bytes]:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    # A new CSRF cookie is random, and expires a year after the second it was set
    # (only Django answers those requests).
    headers = [(k, _cookie(v) if k == "Set-Cookie" else v) for k, v in seen["headers"]]
    return seen["status"], headers, body


def agreed(fast, django, request: Case) -> tuple[str, list, bytes]:
    """The fast path's answer to ``request``, once Django gave the same."""
    got = call(fast, request.build())
    assert got == call(django, request.build())
    return got


@pytest.fixture
def accounts(db):
    # A day old: its next refresh is days away, so max-age is the cap, not 0.
    acme = make_account(
        username="acme_bakery", slug="acme", token=TOKEN, is_default=True, token_age=timedelta(1)
    )
    make_account(
        username="gone_bakery", slug="gone", status=InstagramAccount.Status.NEEDS_RECONNECT
    )
    make_account(username="off_bakery", slug="off", status=InstagramAccount.Status.DISCONNECTED)
    make_account(username="bare_bakery", slug="bare", token=None)
    stale = make_account(username="stale_bakery", slug="stale")
    AccessToken.objects.filter(account=stale).update(expires_at=timezone.now() - timedelta(1))
    broken = make_account(username="broken_bakery", slug="broken")
    AccessToken.objects.filter(account=broken).update(ciphertext="gAAAAAnot-a-fernet-token")
    make_account(
        username="narrow_bakery",
        slug="narrow",
        token="IGAAnarrowToken00000000000000000001",
        allowed_domains="https://shop.example.com example.com",
    )
    return acme


def forget_served() -> None:
    """Empty the served copies (shared cache and this process's copy)."""
    keys = [token_cache.DEFAULT_KEY, token_cache.SLUGS_KEY]
    keys += [token_cache.key_for(s) for s in SLUGS]
    cache.delete_many(keys)
    token_cache.clear_local()


def etags_of(django, paths: list[str] = PATHS) -> dict[str, str]:
    tags = {}
    for path in paths:
        _, headers, _ = call(django, Case("GET", path).build())
        tag = dict(headers).get("ETag")
        if tag:
            tags[path] = tag
    return tags


def differences(
    django, counting, fast, cases: list[Case], *, paths=PATHS, forget=forget_served
) -> tuple[list, int]:
    """(cases where the two differ, how many the fast path answered itself).

    Warm (every served copy filled first, as Django's first reads leave them), the
    fast path must answer each case marked ``fast`` and no other. Cold (before each
    request of each path), it may answer only what needs no served copy (a name too
    long to be an account's): the plain cases of each URL and method run cold too.
    ``paths`` are read first to warm the served copies, ``forget`` empties them."""
    different: list[tuple] = []
    answered = 0

    def compare(case: Case, warm: bool) -> None:
        nonlocal answered
        before = counting.calls
        got = call(fast, case.build())
        # Warm, the same request again: answered from the kept answer.
        again = call(fast, case.build()) if warm else got
        handed = counting.calls - before
        if not warm:
            forget()
        expected = call(django, case.build())
        if got != expected or again != expected:
            different.append((case, warm, got if got != expected else again, expected))
        answered += handed == 0
        if (warm and handed != 0) if case.fast else handed != (2 if warm else 1):
            different.append((case, warm, f"reached Django {handed} times", None))

    for case in cases:
        if not (case.headers or case.query or case.environ):
            forget()
            compare(case, warm=False)
    forget()
    for path in paths:
        call(django, Case("GET", path).build())
    for case in cases:
        compare(case, warm=True)
    return different, answered


def report(different: list) -> str:
    lines = []
    for case, warm, got, expected in different[:5]:
        lines.append(f"{case} warm={warm}\n  fast:   {got}\n  django: {expected}")
    return f"{len(different)} differences:\n" + "\n".join(lines)


@pytest.mark.parametrize(
    ("allowed_domains", "local_seconds"),
    [("", 0), ("example.com, *.example.org http://localhost:8080", 60)],
    ids=["unrestricted-shared-cache", "restricted-process-copy"],
)
def test_the_fast_path_answers_exactly_as_django(
    handlers, accounts, settings, allowed_domains, local_seconds
):
    settings.ALLOWED_DOMAINS = allowed_domains
    settings.TOKEN_CACHE_LOCAL_SECONDS = local_seconds
    django, counting, fast = handlers
    cases = table(etags_of(django))
    different, answered = differences(django, counting, fast, cases)
    assert not different, report(different)
    assert answered >= sum(case.fast for case in cases) > 500


def test_the_fast_path_agrees_under_the_production_security_settings(handlers, accounts, settings):
    # Plain HTTP is redirected (Django's business); HTTPS behind the proxy gets HSTS.
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.ALLOWED_DOMAINS = "example.com"
    django, counting, fast = handlers
    secure = {"X-Forwarded-Proto": "https"}
    cases = []
    for path in PATHS:
        cases.append(Case("GET", path, fast=False))  # 301 to https
        cases.append(Case("GET", path, headers=secure))
        cases.append(Case("GET", path, headers={**secure, "Origin": "https://example.com"}))
        cases.append(Case("OPTIONS", path, headers=secure))
        cases.append(Case("POST", path, headers=secure, fast=False))
    different, answered = differences(django, counting, fast, cases)
    assert not different, report(different)
    _, headers, _ = call(fast, Case("GET", "/token/acme.json", headers=secure).build())
    assert ("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload") in headers


def test_the_fast_path_agrees_with_rate_limits_on_and_a_broken_js_name(
    handlers, accounts, settings
):
    # The token URLs are never rate-limited, by either path; a JS_CONSTANT_NAME that
    # cannot be used is a quiet 500 in JavaScript from both.
    settings.RATELIMIT_ENABLE = True
    settings.RATELIMIT_LOGIN = "1/m"
    settings.JS_CONSTANT_NAME = "not valid"
    django, counting, fast = handlers
    cases = [Case("GET", path) for path in PATHS for _ in range(3)]
    different, _ = differences(django, counting, fast, cases)
    assert not different, report(different)


def test_a_changed_middleware_list_turns_the_fast_path_off(handlers, accounts, settings, caplog):
    django, counting, fast = handlers
    call(django, Case("GET", "/token/acme.json").build())
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    before = counting.calls
    with caplog.at_level(logging.WARNING, logger="accounts.fastpath"):
        call(fast, Case("GET", "/token/acme.json").build())
    assert counting.calls == before + 1
    assert "token fast path off: MIDDLEWARE differs" in caplog.text


def test_a_warm_read_costs_no_query_and_a_miss_goes_to_django(
    handlers, accounts, django_assert_num_queries
):
    django, counting, fast = handlers
    forget_served()
    status, _, _ = call(fast, Case("GET", "/token/acme.json").build())
    assert status == "200 OK" and counting.calls == 1  # a miss: Django built the entry
    with django_assert_num_queries(0):
        status, headers, body = call(fast, Case("GET", "/token/acme.json").build())
    assert status == "200 OK" and counting.calls == 1
    assert TOKEN.encode() in body
    assert dict(headers)["Content-Length"] == str(len(body))


def assert_a_broken_rule_is_logged_and_django_answers(
    handlers, monkeypatch, caplog, *, rule: str, path: str
) -> None:
    """With ``rule`` (the view's, e.g. ``accounts.serving_policy.token_answer``)
    failing, the fast path logs it and hands ``path`` to Django, whose view fails."""
    django, counting, fast = handlers
    call(django, Case("GET", path).build())
    before = counting.calls

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(rule, broken)
    with caplog.at_level(logging.ERROR, logger="accounts.fastpath"):
        status, _, body = call(fast, Case("GET", path).build())
    assert counting.calls == before + 1
    assert "token fast path failed" in caplog.text
    assert status == "500 Internal Server Error"  # Django's view calls the same rule


def test_an_error_in_the_fast_path_is_logged_and_django_answers(
    handlers, accounts, monkeypatch, caplog
):
    assert_a_broken_rule_is_logged_and_django_answers(
        handlers,
        monkeypatch,
        caplog,
        rule="accounts.serving_policy.token_answer",
        path="/token/acme.json",
    )


def test_a_kept_answer_is_not_reused_once_its_entry_its_max_age_or_a_setting_changed(
    handlers, accounts, settings, clock, django_capture_on_commit_callbacks
):
    settings.TOKEN_CACHE_MAX_AGE = 10**8  # max-age: the seconds to the next refresh
    django, counting, fast = handlers
    forget_served()
    request = Case("GET", "/token/acme.json", headers={"Origin": "https://example.com"})

    def both() -> tuple:
        return agreed(fast, django, request)

    first = both()
    calls = counting.calls
    assert both() == first and counting.calls == calls  # kept, reused
    clock.now += 1
    moved = both()
    assert counting.calls == calls  # the fast path's own answer, not a kept one
    assert dict(moved[1])["Cache-Control"] != dict(first[1])["Cache-Control"]
    # The owner narrows the account's own list: same token, same max-age.
    with django_capture_on_commit_callbacks(execute=True):
        accounts.allowed_domains = "shop.example.com"
        accounts.save()
    call(django, request.build())  # another process rebuilds the served copy first
    listed = both()
    assert counting.calls == calls  # the fast path's own answer from the new copy
    assert "Access-Control-Allow-Origin" not in dict(listed[1])
    assert dict(listed[1])["Cache-Control"] == dict(moved[1])["Cache-Control"].replace(
        "public", "private"
    )
    with django_capture_on_commit_callbacks(execute=True):
        accounts.allowed_domains = ""
        accounts.save()
    with django_capture_on_commit_callbacks(execute=True):  # the refresh commits
        token_store(
            account=accounts,
            access_token="IGAArefreshedToken0000000000000002",
            issued_at=timezone.now(),
            expires_at=timezone.now() + timedelta(days=60),
        )
    refreshed = both()  # the write dropped the served copies: Django rebuilt them
    assert b"IGAArefreshedToken0000000000000002" in refreshed[2]
    assert both() == refreshed
    settings.ALLOWED_DOMAINS = "evil.test"
    narrowed = both()
    assert dict(narrowed[1]).get("Access-Control-Allow-Origin") is None
    assert dict(refreshed[1])["Access-Control-Allow-Origin"] == "https://example.com"


# A URLconf mounting the agent under a prefix (test_a_urlconf_that_moves_...).
urlpatterns = [urls.path("agent/", urls.include("accounts.urls"))]


def test_a_urlconf_that_moves_the_token_urls_turns_the_fast_path_off(
    handlers, accounts, settings, caplog
):
    settings.ROOT_URLCONF = __name__
    django, counting, fast = handlers
    with caplog.at_level(logging.WARNING, logger="accounts.fastpath"):
        for path in ("/token/acme.json", "/agent/token/acme.json"):
            got = call(fast, Case("GET", path).build())
            assert got == call(django, Case("GET", path).build())
    assert counting.calls == 2
    assert "token fast path off: the URLconf does not mount" in caplog.text
