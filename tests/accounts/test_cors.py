"""ALLOWED_DOMAINS parsing and origin matching (accounts/cors.py)."""

import pytest

from accounts import cors


@pytest.mark.parametrize(
    ("value", "origin", "allowed"),
    [
        # Token Agent's form: space-separated host names, https assumed.
        ("example.com shop.example.org", "https://example.com", True),
        ("example.com shop.example.org", "https://shop.example.org", True),
        ("example.com shop.example.org", "http://example.com", False),
        ("example.com shop.example.org", "https://www.example.com", False),
        ("example.com shop.example.org", "https://evil.com", False),
        # Full origins, comma separated, mixed with host names, odd spacing.
        ("https://a.example, http://localhost:8080 ,b.example", "https://a.example", True),
        ("https://a.example, http://localhost:8080 ,b.example", "http://localhost:8080", True),
        ("https://a.example, http://localhost:8080 ,b.example", "http://localhost:8081", False),
        ("https://a.example, http://localhost:8080 ,b.example", "https://b.example", True),
        ("https://a.example,\n\thttps://c.example", "https://c.example", True),
        # Default ports are the same origin; case does not matter.
        ("https://a.example:443", "https://a.example", True),
        ("a.example", "https://A.Example:443", True),
        ("HTTPS://A.EXAMPLE/", "https://a.example", True),
        ("a.example:8443", "https://a.example:8443", True),
        ("a.example:8443", "https://a.example", False),
        # Subdomain wildcards.
        ("*.example.com", "https://www.example.com", True),
        ("*.example.com", "https://a.b.example.com", True),
        ("*.example.com", "https://example.com", False),
        ("*.example.com", "https://badexample.com", False),
        ("*.example.com", "http://www.example.com", False),
        ("http://*.example.com", "http://www.example.com", True),
        # Not origins at all.
        ("example.com", "null", False),
        ("example.com", "", False),
        ("example.com", "example.com", False),
        ("example.com", "https://example.com.evil.net", False),
        # Internationalized names compare in their ASCII (punycode) form.
        ("bücher.example", "https://xn--bcher-kva.example", True),
    ],
)
def test_allow_list_matches_listed_origins_only(value, origin, allowed):
    assert cors.parse(value).allows(origin) is allowed


def test_empty_list_is_unrestricted():
    for value in ("", "  ", None, " , "):
        allow = cors.parse(value)
        assert not allow.restricted
        assert allow.allows("https://anything.example")


@pytest.mark.parametrize(
    "entry",
    [
        "ftp://example.com",
        "https://example.com/path",
        "exa_mple.com",
        "https://user@example.com",
        "example.com:notaport",
        "example.com:99999",
        "foo.*.example.com",
        "-bad-.example",
        "?x=1",
    ],
)
def test_invalid_entries_match_nothing_and_are_reported(entry):
    allow = cors.parse(f"{entry} good.example")
    assert allow.restricted
    assert allow.allows("https://good.example")
    assert len(allow.invalid) >= 1
    assert cors.validate(entry)


def test_a_list_of_only_invalid_entries_allows_nothing():
    allow = cors.parse("https://example.com/path ftp://x.example")
    assert allow.restricted
    assert not allow.allows("https://example.com")
    assert not allow.allows("ftp://x.example")


def test_per_account_list_only_narrows_the_global_one():
    glob = cors.parse("a.example b.example")
    narrowed = glob.narrowed_by(cors.parse("b.example c.example"))
    assert narrowed.allows("https://b.example")
    assert not narrowed.allows("https://a.example")
    assert not narrowed.allows("https://c.example")  # not in the global list
    assert glob.narrowed_by(cors.parse("")) is glob
    account_only = cors.parse("").narrowed_by(cors.parse("c.example"))
    assert account_only.restricted
    assert account_only.allows("https://c.example")
    assert not account_only.allows("https://a.example")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://shop.example/products/1?x=2#top", "https://shop.example"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("https://Shop.Example:443/", "https://shop.example"),
        ("file:///home/me/page.html", None),
        ("not a url", None),
        ("", None),
        ("https://[::1]:8000/", "https://[::1]:8000"),
    ],
)
def test_origin_of_a_referer(url, origin):
    assert cors.origin_of(url) == origin


def test_allow_origin_header_echoes_allowed_origins_only():
    listed = cors.parse("shop.example")
    assert cors.allow_origin_header("https://shop.example", listed) == "https://shop.example"
    assert cors.allow_origin_header("https://evil.example", listed) is None
    assert cors.allow_origin_header(None, listed) is None
    assert cors.allow_origin_header("null", listed) is None
    anyone = cors.parse("")
    assert cors.allow_origin_header("https://evil.example", anyone) == "https://evil.example"
    assert cors.allow_origin_header("null", anyone) == "*"
    # Garbage in an Origin header is never reflected.
    assert cors.allow_origin_header("https://x.example\r\nSet-Cookie: a=b", anyone) in ("*", None)
    assert cors.allow_origin_header("<script>", anyone) == "*"


def test_global_list_follows_the_setting(settings):
    settings.ALLOWED_DOMAINS = ""
    assert cors.is_unrestricted()
    settings.ALLOWED_DOMAINS = "shop.example"
    assert not cors.is_unrestricted()
    assert cors.global_allow_list().allows("https://shop.example")


@pytest.mark.parametrize(
    "value",
    ["http://<", "https://a<b.com", "https://u@x.example", "http://[zz]"],
)
def test_malformed_origins_are_not_origins(value):
    assert cors.origin_of(value) is None
    assert not cors.parse("x.example").allows(value)
    assert cors.allow_origin_header(value, cors.parse("")) == "*"


def test_system_check_reports_bad_settings(settings):
    from accounts.serving_policy import check_serving_settings

    settings.ALLOWED_DOMAINS = "shop.example https://bad.example/path"
    settings.JS_CONSTANT_NAME = "not valid"
    ids = [m.id for m in check_serving_settings()]
    assert ids == ["tokenagent.W101", "tokenagent.E101"]
    settings.ALLOWED_DOMAINS = "shop.example"
    settings.JS_CONSTANT_NAME = "InstagramToken"
    assert check_serving_settings() == []
