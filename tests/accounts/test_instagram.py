"""accounts/instagram.py against `responses`: the exact requests it sends, every
response shape docs/instagram.md lists, section 7's error table, and that no token,
secret or code leaks into an exception or a log line."""

import logging
import re
import socket
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from accounts import instagram
from tests import instagram_fakes as fakes

APP_ID = fakes.APP_ID
APP_SECRET = "test-app-secret-0f9e8d7c"
USER_AGENT = "tokenagent-test/1.0 (+https://agent.example.com)"
REDIRECT_URI = "https://agent.example.com/oauth/instagram/callback/"
CODE = "AQDx7fakeCode0123456789"
NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
# A token that does not look like IGAA...: only scrubbing of the values the call
# sent (not redact()'s IGAA pattern) can keep it out of messages.
ODD_TOKEN = "EAAGodd0token0without0the0usual0prefix"


@pytest.fixture(autouse=True)
def instagram_settings(agent_settings):
    """The client pointed at the fakes, with a secret, user agent and timeouts of this
    module's own (its calls are checked for them)."""
    agent_settings.INSTAGRAM_APP_SECRET = APP_SECRET
    agent_settings.INSTAGRAM_USER_AGENT = USER_AGENT
    agent_settings.INSTAGRAM_CONNECT_TIMEOUT = 3.5
    agent_settings.INSTAGRAM_READ_TIMEOUT = 12.0
    return agent_settings


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def split(call):
    """(scheme, host, path, query dict) of a recorded request."""
    parts = urlsplit(call.request.url)
    return parts.scheme, parts.netloc, parts.path, parse_qs(parts.query, keep_blank_values=True)


def form(call):
    return parse_qs(call.request.body, keep_blank_values=True)


def assert_common(call, *, user_agent=USER_AGENT, timeout=(3.5, 12.0)):
    """Every call: our User-Agent, JSON accepted, and a (connect, read) timeout."""
    assert call.request.headers["User-Agent"] == user_agent
    assert call.request.headers["Accept"] == "application/json"
    assert call.request.req_kwargs["timeout"] == timeout
    assert isinstance(call.request.req_kwargs["timeout"], tuple)


# --- authorize_url, clean_code ------------------------------------------------------------


def test_authorize_url_targets_the_www_host_with_every_parameter():
    url = instagram.authorize_url(redirect_uri=REDIRECT_URI, state="Zk3q9x2LmP0aVb7T")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "www.instagram.com",
        "/oauth/authorize",
    )
    assert parse_qs(parts.query) == {
        "client_id": [APP_ID],
        "redirect_uri": [REDIRECT_URI],
        "response_type": ["code"],
        "scope": ["instagram_business_basic"],
        "state": ["Zk3q9x2LmP0aVb7T"],
        "enable_fb_login": ["0"],
        "force_authentication": ["1"],
    }
    assert APP_SECRET not in url


def test_authorize_url_can_skip_forced_authentication_and_always_asks_for_basic(settings):
    settings.INSTAGRAM_SCOPES = ["instagram_business_manage_insights"]
    url = instagram.authorize_url(redirect_uri=REDIRECT_URI, state="s", force_authentication=False)
    query = parse_qs(urlsplit(url).query)
    assert query["force_authentication"] == ["0"]
    assert query["scope"][0].split(",") == [
        "instagram_business_basic",
        "instagram_business_manage_insights",
    ]


def test_authorize_url_keeps_a_query_already_in_the_configured_url(settings):
    settings.INSTAGRAM_AUTHORIZE_URL = "https://proxy.example.com/authorize?tenant=7"
    url = instagram.authorize_url(redirect_uri=REDIRECT_URI, state="s")
    query = parse_qs(urlsplit(url).query)
    assert query["tenant"] == ["7"] and query["state"] == ["s"]


@pytest.mark.parametrize("missing", ["INSTAGRAM_APP_ID", "INSTAGRAM_APP_SECRET"])
def test_client_refuses_to_run_without_app_credentials(settings, missing):
    setattr(settings, missing, "")
    with pytest.raises(ImproperlyConfigured, match="INSTAGRAM_APP_ID and INSTAGRAM_APP_SECRET"):
        instagram.authorize_url(redirect_uri=REDIRECT_URI, state="s")
    with pytest.raises(ImproperlyConfigured):
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("AQDx7fakeCode#_", "AQDx7fakeCode"),
        ("  AQDx7fakeCode#_\n", "AQDx7fakeCode"),
        ("AQDx7fakeCode", "AQDx7fakeCode"),
        ("AQDx7fakeCode#_#_", "AQDx7fakeCode"),
    ],
)
def test_clean_code_strips_the_fragment_instagram_appends(raw, clean):
    assert instagram.clean_code(raw) == clean


# --- exchange_code --------------------------------------------------------------------------


def test_exchange_code_posts_all_five_form_fields_to_the_api_host(rsps):
    rsps.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_documented())
    instagram.exchange_code(code=CODE + "#_", redirect_uri=REDIRECT_URI)

    (call,) = rsps.calls
    assert call.request.method == "POST"
    scheme, host, path, query = split(call)
    assert (scheme, host, path, query) == ("https", "api.instagram.com", "/oauth/access_token", {})
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(call) == {
        "client_id": [APP_ID],
        "client_secret": [APP_SECRET],
        "grant_type": ["authorization_code"],
        "redirect_uri": [REDIRECT_URI],
        "code": [CODE],  # without the "#_"
    }
    assert_common(call)


def test_exchange_code_reads_the_documented_data_wrapped_shape(rsps):
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json=fakes.code_exchange_documented(
            permissions="instagram_business_basic,instagram_business_manage_insights"
        ),
    )
    short = instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert short.access_token == fakes.SHORT_TOKEN
    assert short.user_id == "8765432101234567"
    assert short.permissions == ("instagram_business_basic", "instagram_business_manage_insights")


def test_exchange_code_reads_the_observed_flat_shape_and_keeps_a_huge_user_id_exact(rsps):
    # Raw text, so the number goes through the JSON parser as Instagram sends it.
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        body='{"access_token": "IGAAFakeShort0a1b2c3", "user_id": 27640875392278831, '
        '"permissions": ["instagram_business_basic", "instagram_business_content_publish"]}',
        content_type="application/json",
    )
    short = instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert 27640875392278831 > 2**53 and float(27640875392278831) != 27640875392278831
    assert short.user_id == "27640875392278831"
    assert short.permissions == ("instagram_business_basic", "instagram_business_content_publish")
    assert short.access_token == fakes.SHORT_TOKEN


def test_exchange_code_accepts_a_space_separated_permission_list(rsps):
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json=fakes.code_exchange_documented(
            permissions="instagram_business_manage_comments instagram_business_basic"
        ),
    )
    short = instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert "instagram_business_basic" in short.permissions


@pytest.mark.parametrize(
    "body",
    [
        fakes.code_exchange_documented(permissions="instagram_business_content_publish"),
        fakes.code_exchange_observed(permissions=["instagram_business_manage_messages"]),
        fakes.code_exchange_observed(permissions=[]),
        fakes.code_exchange_documented(permissions=""),
    ],
    ids=["documented-other-scope", "observed-other-scope", "observed-empty", "documented-empty"],
)
def test_exchange_code_refuses_when_instagram_business_basic_was_not_granted(rsps, body):
    rsps.add(responses.POST, fakes.CODE_EXCHANGE_URL, json=body)
    with pytest.raises(instagram.InstagramPermissionError, match="instagram_business_basic"):
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)


def test_exchange_code_accepts_the_old_shape_without_a_permissions_field(rsps):
    # Basic Display's answer had no permissions; /me is the next check.
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json={"access_token": fakes.SHORT_TOKEN, "user_id": 17841400000000001},
    )
    short = instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert short.user_id == "17841400000000001" and short.permissions == ()


@pytest.mark.parametrize(
    "message",
    ["Matching code was not found or was already used", "Invalid platform app"],
)
def test_exchange_code_maps_the_flat_error_shape_to_a_code_exchange_error(rsps, message):
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json=fakes.code_exchange_error(message),
        status=400,
    )
    with pytest.raises(instagram.InstagramCodeExchangeError) as info:
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    exc = info.value
    assert exc.message == message
    assert (exc.code, exc.error_type, exc.status) == (400, "OAuthException", 400)
    assert isinstance(exc, instagram.InstagramConfigurationError)
    assert not exc.retryable


def test_exchange_code_maps_a_graph_shaped_refusal_to_a_code_exchange_error(rsps):
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        json=fakes.graph_error(100, message="Invalid redirect_uri"),
        status=400,
    )
    with pytest.raises(instagram.InstagramCodeExchangeError) as info:
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert info.value.code == 100


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, None, instagram.InstagramTransientError),
        (503, "<html>Service Unavailable</html>", instagram.InstagramTransientError),
        (400, fakes.graph_error(2), instagram.InstagramTransientError),
        (
            400,
            {
                "error_type": "OAuthException",
                "code": 4,
                "error_message": "Application request limit reached",
            },
            instagram.InstagramRateLimitError,
        ),  # noqa: E501
        (404, "<html>Not Found</html>", instagram.InstagramCodeExchangeError),
        (403, None, instagram.InstagramCodeExchangeError),
    ],
    ids=["500-empty", "503-html", "graph-code-2", "flat-code-4", "404-html", "403-empty"],
)
def test_exchange_code_outages_stay_transient_and_other_refusals_end_the_login(
    rsps, status, body, expected
):
    kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"body": body or ""}
    rsps.add(responses.POST, fakes.CODE_EXCHANGE_URL, status=status, **kw)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert type(info.value) is expected
    assert info.value.status == status


@pytest.mark.parametrize(
    "kw",
    [
        {"body": "<html>ok</html>"},
        {"json": ["not", "an", "object"]},
        {"json": {"user_id": "1", "permissions": "instagram_business_basic"}},
        {"json": {"access_token": "", "user_id": "1"}},
        {"json": {"access_token": fakes.SHORT_TOKEN}},
        {"json": {"access_token": fakes.SHORT_TOKEN, "user_id": ""}},
        {"json": {"access_token": fakes.SHORT_TOKEN, "user_id": True}},
        {"json": {"access_token": fakes.SHORT_TOKEN, "user_id": 2.7640875392278832e16}},
        {"json": {"data": []}},
    ],
    ids=[
        "html",
        "list",
        "no-token",
        "empty-token",
        "no-user-id",
        "empty-user-id",
        "bool-user-id",
        "float-user-id-lost-digits",
        "empty-data",
    ],
)
def test_exchange_code_rejects_malformed_success_answers(rsps, kw):
    rsps.add(responses.POST, fakes.CODE_EXCHANGE_URL, status=200, **kw)
    with pytest.raises(instagram.InstagramMalformedResponseError):
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)


# --- exchange_for_long_lived -------------------------------------------------------------


def test_long_lived_exchange_is_an_unversioned_get_carrying_the_secret(rsps):
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived())
    grant = instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN, now=NOW)

    (call,) = rsps.calls
    assert call.request.method == "GET"
    assert split(call) == (
        "https",
        "graph.instagram.com",
        "/access_token",
        {
            "grant_type": ["ig_exchange_token"],
            "client_secret": [APP_SECRET],
            "access_token": [fakes.SHORT_TOKEN],
        },
    )
    assert not call.request.body
    assert_common(call)
    assert grant.access_token == fakes.LONG_TOKEN
    assert grant.token_type == "bearer"
    assert grant.expires_at == NOW + timedelta(seconds=fakes.SIXTY_DAYS)


def test_long_lived_expiry_counts_from_the_answer_and_is_aware_utc(rsps):
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived(expires_in=5184000))
    before = timezone.now()
    grant = instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN)
    after = timezone.now()
    assert grant.expires_at.utcoffset() == timedelta(0)
    assert before + timedelta(days=60) <= grant.expires_at <= after + timedelta(days=60)


@pytest.mark.parametrize(
    "expires_in",
    [None, "soon", 0, -5, True, 10**20, "5183944.5"],
    ids=["missing", "text", "zero", "negative", "bool", "overflow", "decimal-string"],
)
def test_token_answers_with_a_bad_expires_in_are_malformed(rsps, expires_in):
    body = fakes.long_lived()
    if expires_in is None:
        del body["expires_in"]
    else:
        body["expires_in"] = expires_in
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, json=body)
    rsps.add(responses.GET, fakes.REFRESH_URL, json=body)
    with pytest.raises(instagram.InstagramMalformedResponseError, match="expires_in"):
        instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN, now=NOW)
    with pytest.raises(instagram.InstagramMalformedResponseError, match="expires_in"):
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)


def test_expires_in_sent_as_a_numeric_string_is_accepted(rsps):
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, json=fakes.long_lived(expires_in="5183944"))
    grant = instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN, now=NOW)
    assert grant.expires_at == NOW + timedelta(seconds=5183944)


@pytest.mark.parametrize(
    "kw",
    [
        {"body": "<!doctype html><title>Sorry, something went wrong</title>"},
        {"body": ""},
        {"json": {"token_type": "bearer", "expires_in": fakes.SIXTY_DAYS}},
        {"json": "IGAAFakeLongLived9z8y7x"},
    ],
    ids=["html", "empty", "no-access-token", "json-string"],
)
def test_long_lived_exchange_rejects_malformed_success_answers(rsps, kw):
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, status=200, **kw)
    with pytest.raises(instagram.InstagramMalformedResponseError):
        instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN, now=NOW)


# --- refresh_long_lived -------------------------------------------------------------------


def test_refresh_is_a_get_with_ig_refresh_token_and_no_secret(rsps):
    fakes.register_refresh(rsps)
    grant = instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)

    (call,) = rsps.calls
    assert call.request.method == "GET"
    assert split(call) == (
        "https",
        "graph.instagram.com",
        "/refresh_access_token",
        {"grant_type": ["ig_refresh_token"], "access_token": [fakes.LONG_TOKEN]},
    )
    assert APP_SECRET not in call.request.url
    assert not call.request.body
    assert_common(call)
    assert grant.access_token == fakes.REFRESHED_TOKEN
    assert grant.expires_at == NOW + timedelta(seconds=fakes.SIXTY_DAYS)


def test_refresh_returns_the_same_string_when_instagram_keeps_it(rsps):
    fakes.register_refresh(rsps, token=fakes.LONG_TOKEN)
    grant = instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)
    assert grant.access_token == fakes.LONG_TOKEN


def test_refresh_reads_the_optional_permissions_field(rsps):
    body = fakes.refreshed() | {"permissions": "instagram_business_basic"}
    fakes.register_refresh(rsps, body=body)
    grant = instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)
    assert grant.permissions == ("instagram_business_basic",)


@pytest.mark.parametrize(
    ("code", "message", "error_type"),
    [
        (
            100,
            "Invalid parameter: the access token must be at least 24 hours old",
            "OAuthException",
        ),
        (
            190,
            "Error validating access token: token is too young to be refreshed",
            "OAuthException",
        ),
        (10, "Refresh not allowed: access token is not old enough", "IGApiException"),
        (1, "Tokens younger than 24-hours cannot be refreshed", "IGApiException"),
    ],
)
def test_refresh_of_a_token_under_24_hours_raises_too_young(rsps, code, message, error_type):
    body = fakes.graph_error(code, message=message, error_type=error_type)
    fakes.register_refresh(rsps, status=400, body=body)
    with pytest.raises(instagram.InstagramTokenTooYoungError) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)
    exc = info.value
    # Too young is neither a dead token nor something to retry in a minute.
    assert not isinstance(exc, instagram.InstagramAuthError | instagram.InstagramTransientError)
    assert not exc.retryable
    assert (exc.code, exc.error_type, exc.status) == (code, error_type, 400)


def test_an_expired_token_is_not_mistaken_for_a_young_one(rsps):
    fakes.register_refresh(rsps, status=400, body=fakes.graph_error(190, subcode=463))
    with pytest.raises(instagram.InstagramAuthError) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is instagram.InstagramAuthError
    assert info.value.subcode == 463


def test_a_rate_limit_that_mentions_24_hours_stays_a_rate_limit(rsps):
    body = fakes.graph_error(4, message="Too many calls in the last 24 hours")
    fakes.register_refresh(rsps, status=400, body=body)
    with pytest.raises(instagram.InstagramRateLimitError):
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)


# --- Token answers: the long-lived exchange and the refresh read them alike ----------------

TOKEN_ANSWERS = [
    (
        {
            "access_token": " IGAAFakeAnswer0 ",
            "token_type": "bearer",
            "expires_in": 3600,
            "permissions": ["instagram_business_basic"],
        },
        instagram.TokenGrant(
            access_token="IGAAFakeAnswer0",
            expires_at=NOW + timedelta(hours=1),
            permissions=("instagram_business_basic",),
        ),
    ),
    (
        {"data": [{"access_token": "IGAAFakeAnswer0", "expires_in": "3600", "permissions": "a,b"}]},
        instagram.TokenGrant(
            access_token="IGAAFakeAnswer0",
            expires_at=NOW + timedelta(hours=1),
            token_type="bearer",
            permissions=("a", "b"),
        ),
    ),
    (
        {"access_token": "IGAAFakeAnswer0", "token_type": "Bearer", "expires_in": 60},
        instagram.TokenGrant(
            access_token="IGAAFakeAnswer0",
            expires_at=NOW + timedelta(minutes=1),
            token_type="Bearer",
        ),
    ),
]
TOKEN_ANSWER_IDS = ["flat", "data-wrapped-defaults", "token-type-kept"]


@pytest.mark.parametrize(("body", "expected"), TOKEN_ANSWERS, ids=TOKEN_ANSWER_IDS)
def test_one_helper_turns_a_token_answer_into_a_grant(body, expected):
    assert instagram._token_grant(body, now=NOW) == expected


@pytest.mark.parametrize(("body", "expected"), TOKEN_ANSWERS, ids=TOKEN_ANSWER_IDS)
@pytest.mark.parametrize("function", ["exchange_for_long_lived", "refresh_long_lived"])
def test_exchange_and_refresh_answers_become_the_same_grant(rsps, function, body, expected):
    if function == "exchange_for_long_lived":
        rsps.add(responses.GET, fakes.LONG_LIVED_URL, json=body)
        grant = instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN, now=NOW)
    else:
        fakes.register_refresh(rsps, body=body)
        grant = instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN, now=NOW)
    assert grant == expected


# --- get_profile ----------------------------------------------------------------------------


def test_profile_calls_versioned_me_with_the_fields_it_keys_on(rsps):
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.me())
    profile = instagram.get_profile(access_token=fakes.LONG_TOKEN)

    (call,) = rsps.calls
    scheme, host, path, query = split(call)
    assert call.request.method == "GET"
    assert (scheme, host, path) == ("https", "graph.instagram.com", "/v21.0/me")
    assert query["access_token"] == [fakes.LONG_TOKEN]
    fields = query["fields"][0].split(",")
    assert {"user_id", "username", "account_type"} <= set(fields)
    assert set(query) == {"fields", "access_token"}
    assert_common(call)
    assert profile == instagram.Profile(
        user_id=fakes.USER_ID,
        id=fakes.APP_SCOPED_ID,
        username="acme_bakery",
        name="Acme Bakery",
        account_type="BUSINESS",
        media_count=214,
    )


def test_profile_follows_the_pinned_graph_version(rsps, settings):
    settings.INSTAGRAM_GRAPH_VERSION = "v23.0"
    rsps.add(responses.GET, f"{fakes.GRAPH}/v23.0/me", json=fakes.me())
    instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert urlsplit(rsps.calls[0].request.url).path == "/v23.0/me"


def test_profile_reads_the_data_wrapped_shape(rsps):
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.me(wrapped=True, username="other_shop"))
    profile = instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert (profile.user_id, profile.id, profile.username) == (
        fakes.USER_ID,
        fakes.APP_SCOPED_ID,
        "other_shop",
    )


def test_profile_keeps_numeric_ids_exact_and_tolerates_a_missing_app_scoped_id(rsps):
    rsps.add(
        responses.GET,
        fakes.ME_URL,
        body='{"user_id": 27640875392278831, "username": "acme_bakery"}',
        content_type="application/json",
    )
    profile = instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert profile.user_id == "27640875392278831"
    assert profile.id == "" and profile.media_count is None


@pytest.mark.parametrize(
    "body",
    [
        {"id": fakes.APP_SCOPED_ID, "username": "acme_bakery"},  # app-scoped id only
        {"user_id": fakes.USER_ID},
        {"user_id": fakes.USER_ID, "username": ""},
        {"data": []},
    ],
    ids=["no-user-id", "no-username", "empty-username", "empty-data"],
)
def test_profile_without_user_id_or_username_is_malformed(rsps, body):
    # Keying an account on the app-scoped id would split it in two later (section 5).
    rsps.add(responses.GET, fakes.ME_URL, json=body)
    with pytest.raises(instagram.InstagramMalformedResponseError):
        instagram.get_profile(access_token=fakes.LONG_TOKEN)


# --- media_list ---------------------------------------------------------------------------


def test_media_list_reads_versioned_me_media_with_the_feeds_fields_and_limit(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=2))
    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=2)

    (call,) = rsps.calls
    scheme, host, path, query = split(call)
    assert (call.request.method, scheme, host, path) == (
        "GET",
        "https",
        "graph.instagram.com",
        "/v21.0/me/media",
    )
    assert query == {
        "fields": [instagram.MEDIA_FIELDS],
        "limit": ["2"],
        "access_token": [fakes.LONG_TOKEN],
    }
    assert instagram.MEDIA_FIELDS == fakes.MEDIA_FIELDS_SENT
    assert "children{id,media_type,media_url,thumbnail_url}" in instagram.MEDIA_FIELDS
    assert set(instagram.MEDIA_FIELDS.split("children")[0].strip(",").split(",")) == {
        "id",
        "media_type",
        "media_url",
        "thumbnail_url",
        "permalink",
        "caption",
        "timestamp",
    }
    assert_common(call)
    assert [m.id for m in items] == ["18034567890100000", "18034567890100001"]
    assert all(isinstance(m, instagram.Media) for m in items)
    assert fakes.LONG_TOKEN not in repr(items)


def test_media_list_asks_at_most_100_per_page(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=1))
    instagram.media_list(access_token=fakes.LONG_TOKEN, limit=500)
    assert split(rsps.calls[0])[3]["limit"] == [str(instagram.MEDIA_PAGE_LIMIT)] == ["100"]


def test_media_list_reads_every_media_type_into_frozen_dataclasses(rsps):
    items = [
        fakes.media_item(0),
        fakes.media_item(1, media_type="VIDEO"),
        fakes.media_item(2, media_type="CAROUSEL_ALBUM"),
        fakes.media_item(3, caption=False),
    ]
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=items))
    photo, video, carousel, bare = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=10)

    assert photo == instagram.Media(
        id="18034567890100000",
        media_type="IMAGE",
        permalink="https://www.instagram.com/p/DFake0000/",
        timestamp=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
        caption="Post 0",
        media_url=fakes.cdn_url("fake0.jpg"),
    )
    assert photo.thumbnail_url == "" and photo.children == ()
    assert (video.media_url, video.thumbnail_url) == (
        fakes.cdn_url("fake1.mp4"),
        fakes.cdn_url("fake1_thumb.jpg"),
    )
    assert carousel.media_url == fakes.cdn_url("fake2_0.jpg")
    assert carousel.children == (
        instagram.MediaChild(
            id="17934567890100200", media_type="IMAGE", media_url=fakes.cdn_url("fake2_0.jpg")
        ),
        instagram.MediaChild(
            id="17934567890100201", media_type="IMAGE", media_url=fakes.cdn_url("fake2_1.jpg")
        ),
        instagram.MediaChild(
            id="17934567890100202",
            media_type="VIDEO",
            media_url=fakes.cdn_url("fake2_2.mp4"),
            thumbnail_url=fakes.cdn_url("fake2_2_thumb.jpg"),
        ),
    )
    assert bare.caption is None  # absent, not ""
    with pytest.raises(AttributeError):
        photo.caption = "changed"  # type: ignore[misc]  # frozen: the point of the test


def test_withheld_media_urls_and_empty_captions_are_kept_apart(rsps):
    reel = fakes.media_item(0, media_type="VIDEO", caption="")
    del reel["media_url"]  # licensed audio: Instagram withholds it (section 6)
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=[reel]))
    [item] = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    assert (item.media_url, item.caption) == ("", "")
    assert item.thumbnail_url


@pytest.mark.parametrize(
    "broken",
    [
        {"id": None},
        {"id": "18/../x"},
        {"id": True},
        {"media_type": "STORY"},
        {"media_type": None},
        {"timestamp": "yesterday"},
        {"timestamp": "2025-03-14T09:26:53"},  # no offset: not Instagram's
        {"timestamp": 1741944413},
    ],
    ids=str,
)
def test_items_that_cannot_be_posts_are_skipped(rsps, broken):
    items = [fakes.media_item(0, **broken), fakes.media_item(1), "not an object"]
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=items))
    assert [m.id for m in instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)] == [
        "18034567890100001"
    ]


def test_a_page_of_items_none_of_which_is_readable_is_malformed(rsps):
    items = [fakes.media_item(0, media_type="STORY"), {"id": "1"}]
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=items))
    with pytest.raises(instagram.InstagramMalformedResponseError):
        instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)


def test_an_empty_feed_is_an_empty_list(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json={"data": []})
    assert instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5) == []


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//scontent.cdninstagram.com/x.jpg",
        "https://user:pass@scontent.cdninstagram.com/x.jpg",
        "https://scontent.cdninstagram.com/x.jpg\nSet-Cookie: a=b",
        "https://scontent.cdninstagram.com/" + "x" * 5000,
        42,
    ],
    ids=str,
)
def test_urls_that_are_not_plain_http_are_dropped(rsps, url):
    item = fakes.media_item(0, media_type="VIDEO", permalink=url, media_url=url, thumbnail_url=url)
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=[item]))
    [m] = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    assert (m.permalink, m.media_url, m.thumbnail_url) == ("", "", "")


def test_captions_and_carousels_are_bounded(rsps):
    carousel = fakes.media_item(0, media_type="CAROUSEL_ALBUM", caption="x" * 10_000)
    child = carousel["children"]["data"][0]
    carousel["children"]["data"] = [
        {**child, "id": f"17{i:015d}"} for i in range(instagram.MAX_CHILDREN + 5)
    ]
    carousel["children"]["data"].insert(1, {"id": "17999", "media_type": "CAROUSEL_ALBUM"})
    photo = fakes.media_item(1, children={"data": [child]})  # only carousels have children
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(items=[carousel, photo]))
    got, plain = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    assert got.caption is not None and len(got.caption) == instagram.MAX_CAPTION
    assert len(got.children) == instagram.MAX_CHILDREN - 1  # the nested carousel is dropped
    assert plain.children == ()


def test_media_list_follows_next_until_it_is_absent_even_after_a_short_page(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=3, after="P2"))
    # Page 2 is short (1 item) but still has `next`: not the end.
    page2 = fakes.media_page(count=1, start=3)
    page2["paging"]["next"] = fakes.media_next_url(after="P3", count=3)
    rsps.add(responses.GET, fakes.media_next_url(after="P2", count=3), json=page2)
    rsps.add(
        responses.GET,
        fakes.media_next_url(after="P3", count=3),
        json=fakes.media_page(count=2, start=4),
    )

    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=100)

    assert [m.caption for m in items] == [f"Post {i}" for i in range(6)]
    assert len(rsps.calls) == 3
    for call, after in zip(rsps.calls[1:], ["P2", "P3"], strict=True):
        scheme, host, path, query = split(call)
        assert (scheme, host, path) == (
            "https",
            "graph.instagram.com",
            f"/v21.0/{fakes.USER_ID}/media",
        )
        # Exactly paging.next: nothing added, nothing dropped.
        assert query == {
            "access_token": [fakes.LONG_TOKEN],
            "fields": [fakes.MEDIA_FIELDS_SENT],
            "limit": ["3"],
            "after": [after],
        }
        assert_common(call)


def test_media_list_stops_at_the_limit_without_fetching_more_pages(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=3, after="P2"))
    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=2)
    assert len(items) == 2 and len(rsps.calls) == 1


def test_a_limit_below_one_asks_nothing(rsps):
    assert instagram.media_list(access_token=fakes.LONG_TOKEN, limit=0) == []
    assert len(rsps.calls) == 0


def test_media_list_stops_when_a_server_repeats_the_same_next_url(rsps):
    first = fakes.media_page(count=1, after="SAME")
    second = fakes.media_page(count=1, start=1, after="SAME")
    rsps.add(responses.GET, fakes.MEDIA_URL, json=first)
    rsps.add(responses.GET, fakes.media_next_url(after="SAME", count=1), json=second)
    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=50)
    assert len(items) == 2 and len(rsps.calls) == 2


def test_media_list_stops_when_a_page_brings_nothing_new(rsps):
    # Each next is new, but the posts are the ones already read: a loop all the same.
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=2, after="A"))
    rsps.add(
        responses.GET,
        fakes.media_next_url(after="A", count=2),
        json=fakes.media_page(count=2, after="B"),
    )
    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=50)
    assert len(items) == 2 and len(rsps.calls) == 2


def test_duplicates_across_pages_are_dropped(rsps):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=fakes.media_page(count=2, after="A"))
    rsps.add(
        responses.GET,
        fakes.media_next_url(after="A", count=2),
        json=fakes.media_page(count=2, start=1),
    )
    items = instagram.media_list(access_token=fakes.LONG_TOKEN, limit=50)
    assert [m.caption for m in items] == ["Post 0", "Post 1", "Post 2"]


def test_media_list_gives_up_after_max_pages_of_empty_pages(rsps):
    def empty_page_pointing_at(n):
        nxt = fakes.media_next_url(after=n, count=25, user_id="x")
        return nxt, {"data": [], "paging": {"next": nxt}}

    url, body = empty_page_pointing_at(0)
    rsps.add(responses.GET, fakes.MEDIA_URL, json=body)
    for n in range(1, instagram.MEDIA_MAX_PAGES):
        nxt, body = empty_page_pointing_at(n)
        rsps.add(responses.GET, url, json=body)
        url = nxt
    assert instagram.media_list(access_token=fakes.LONG_TOKEN, limit=50) == []
    assert len(rsps.calls) == instagram.MEDIA_MAX_PAGES == 20


def test_a_next_url_without_a_token_or_fields_gets_the_callers(rsps):
    first = fakes.media_page(count=1)
    first["paging"]["next"] = f"{fakes.GRAPH}/v21.0/{fakes.USER_ID}/media?limit=25&after=QQ"
    rsps.add(responses.GET, fakes.MEDIA_URL, json=first)
    rsps.add(
        responses.GET,
        f"{fakes.GRAPH}/v21.0/{fakes.USER_ID}/media",
        json=fakes.media_page(count=1, start=1),
    )
    instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    query = split(rsps.calls[1])[3]
    assert query == {
        "limit": ["25"],
        "after": ["QQ"],
        "access_token": [fakes.LONG_TOKEN],
        "fields": [instagram.MEDIA_FIELDS],
    }


@pytest.mark.parametrize(
    "evil",
    [
        f"https://collector.example.net/v21.0/me/media?access_token={fakes.LONG_TOKEN}&after=x",
        f"http://graph.instagram.com/v21.0/me/media?access_token={fakes.LONG_TOKEN}&after=x",
        f"https://graph.instagram.com.evil.example/v21.0/me?access_token={fakes.LONG_TOKEN}",
        "javascript:alert(1)",
    ],
)
def test_a_next_url_on_another_host_is_never_sent_the_token(rsps, evil):
    first = fakes.media_page(count=1)
    first["paging"]["next"] = evil
    rsps.add(responses.GET, fakes.MEDIA_URL, json=first)
    with pytest.raises(instagram.InstagramMalformedResponseError) as info:
        instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    assert len(rsps.calls) == 1
    assert fakes.LONG_TOKEN not in str(info.value)


def test_a_next_url_outside_the_graph_base_path_is_refused(rsps, settings):
    settings.INSTAGRAM_GRAPH_URL = "https://proxy.example.com/graph"
    first = fakes.media_page(count=1)
    first["paging"]["next"] = "https://proxy.example.com/admin/media?after=x"
    rsps.add(
        responses.GET, re.compile(r"^https://proxy\.example\.com/graph/v21\.0/me/media"), json=first
    )
    with pytest.raises(instagram.InstagramMalformedResponseError, match="outside the Graph API"):
        instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    "body",
    [{"paging": {}}, {"data": {"id": "1"}}, ["not", "an", "object"]],
    ids=["no-data", "dict-data", "list"],
)
def test_media_answers_without_a_data_list_are_malformed(rsps, body):
    rsps.add(responses.GET, fakes.MEDIA_URL, json=body)
    with pytest.raises(instagram.InstagramMalformedResponseError):
        instagram.media_list(access_token=fakes.LONG_TOKEN, limit=5)


# --- fetch_image ------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 200


def test_fetch_image_streams_the_picture_without_any_token(rsps):
    url = fakes.cdn_url("fake0.jpg")
    rsps.add(responses.GET, url, body=JPEG, content_type="image/jpeg")
    got = instagram.fetch_image(url, max_bytes=1000, timeout=7.0)
    assert (got.content, got.content_type) == (JPEG, "image/jpeg")
    (call,) = rsps.calls
    assert call.request.url == url
    assert "access_token" not in call.request.url
    assert call.request.headers["User-Agent"] == USER_AGENT
    assert call.request.headers["Accept"].startswith("image/")
    assert call.request.req_kwargs["stream"] is True
    assert call.request.req_kwargs["timeout"] == (3.5, pytest.approx(7.0, abs=0.1))
    assert JPEG not in repr(got).encode()


@pytest.mark.parametrize(
    "host",
    [
        "scontent.cdninstagram.com",
        "scontent-lhr8-1.cdninstagram.com",
        "video.xx.fbcdn.net",
        "graph.instagram.com",
    ],
)
def test_fetch_image_accepts_the_cdn_hosts_and_the_graph_host(rsps, host):
    rsps.add(responses.GET, f"https://{host}/v/x.jpg", body=JPEG, content_type="image/jpeg")
    assert instagram.fetch_image(f"https://{host}/v/x.jpg", max_bytes=1000, timeout=5).content


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "https://cdninstagram.com.evil.example/x.jpg",
        "https://evilcdninstagram.com/x.jpg",
        "file:///etc/passwd",
        "ftp://scontent.cdninstagram.com/x.jpg",
        "https://user:pw@scontent.cdninstagram.com/x.jpg",
        "",
    ],
)
def test_fetch_image_refuses_other_hosts_and_schemes_before_any_request(rsps, url):
    with pytest.raises(instagram.InstagramImageError):
        instagram.fetch_image(url, max_bytes=1000, timeout=5)
    assert len(rsps.calls) == 0


def test_fetch_image_hosts_follow_the_setting(rsps, settings):
    settings.FEED_IMAGE_HOSTS = ["media.example.org"]
    rsps.add(
        responses.GET, "https://img.media.example.org/x.jpg", body=JPEG, content_type="image/png"
    )
    assert instagram.fetch_image("https://img.media.example.org/x.jpg", max_bytes=999, timeout=5)
    with pytest.raises(instagram.InstagramImageError, match="FEED_IMAGE_HOSTS"):
        instagram.fetch_image(fakes.cdn_url("x.jpg"), max_bytes=999, timeout=5)


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (403, {}, instagram.InstagramImageError, None),
        (404, {}, instagram.InstagramImageError, None),
        (410, {}, instagram.InstagramImageError, None),
        (500, {}, instagram.InstagramTransientError, None),
        (503, {}, instagram.InstagramTransientError, None),
        (429, {"Retry-After": "120"}, instagram.InstagramRateLimitError, 120.0),
        (429, {}, instagram.InstagramRateLimitError, None),
    ],
)
def test_fetch_image_statuses(rsps, status, headers, expected, retry_after):
    url = fakes.cdn_url("x.jpg")
    rsps.add(responses.GET, url, body=b"URL signature expired", status=status, headers=headers)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.fetch_image(url, max_bytes=1000, timeout=5)
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.retryable is issubclass(expected, instagram.InstagramTransientError)
    if expected is instagram.InstagramRateLimitError:
        assert info.value.retry_after == retry_after
    assert "oh=" not in str(info.value)  # host and path only


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", ""])
def test_fetch_image_wants_an_image_content_type(rsps, content_type):
    url = fakes.cdn_url("x.jpg")
    rsps.add(responses.GET, url, body=JPEG, headers={"Content-Type": content_type})
    with pytest.raises(instagram.InstagramImageError, match="not an image"):
        instagram.fetch_image(url, max_bytes=1000, timeout=5)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Length": str(len(JPEG) * 10)}, "^image of 2040 bytes exceeds the 1000-byte"),
        ({}, "^image exceeds the 1000-byte limit"),  # no length: the bytes are counted
    ],
    ids=["declared", "counted"],
)
def test_fetch_image_refuses_a_body_over_the_limit(rsps, headers, message):
    url = fakes.cdn_url("x.jpg")
    rsps.add(responses.GET, url, body=JPEG * 10, content_type="image/jpeg", headers=headers)
    with pytest.raises(instagram.InstagramImageError, match=message):
        instagram.fetch_image(url, max_bytes=1000, timeout=5)


def test_fetch_image_follows_a_few_redirects_within_the_cdn(rsps):
    first, second = fakes.cdn_url("a.jpg"), "https://scontent-ams2-1.cdninstagram.com/v/b.jpg"
    rsps.add(responses.GET, first, status=302, headers={"Location": second})
    rsps.add(responses.GET, second, body=JPEG, content_type="image/jpeg")
    assert instagram.fetch_image(first, max_bytes=1000, timeout=5).content == JPEG


def test_fetch_image_never_follows_a_redirect_off_the_cdn(rsps):
    url = fakes.cdn_url("a.jpg")
    rsps.add(responses.GET, url, status=302, headers={"Location": "http://169.254.169.254/"})
    with pytest.raises(instagram.InstagramImageError, match="not Instagram's media CDN"):
        instagram.fetch_image(url, max_bytes=1000, timeout=5)
    assert len(rsps.calls) == 1


def test_fetch_image_stops_after_too_many_redirects(rsps):
    url = fakes.cdn_url("loop.jpg")
    rsps.add(responses.GET, url, status=302, headers={"Location": url})
    with pytest.raises(instagram.InstagramImageError, match="too many redirects"):
        instagram.fetch_image(url, max_bytes=1000, timeout=5)
    assert len(rsps.calls) == instagram.IMAGE_MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    "error",
    [requests.ConnectTimeout("t"), requests.ReadTimeout("t"), requests.ConnectionError("c")],
)
def test_fetch_image_network_failures_are_transient(rsps, error):
    url = fakes.cdn_url("x.jpg")
    rsps.add(responses.GET, url, body=error)
    with pytest.raises(instagram.InstagramTransientError) as info:
        instagram.fetch_image(url, max_bytes=1000, timeout=5)
    assert info.value.__context__ is None and info.value.__cause__ is None


class _Dripping(BaseHTTPRequestHandler):
    """Headers at once, then the body one byte at a time: no read ever times out."""

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args):
        pass


def test_fetch_image_bounds_the_whole_download_not_each_read(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dripping)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.INSTAGRAM_GRAPH_URL = f"http://127.0.0.1:{server.server_port}"
    try:
        started = time.monotonic()
        with pytest.raises(instagram.InstagramTransientError, match="took too long"):
            instagram.fetch_image(
                f"http://127.0.0.1:{server.server_port}/x.jpg", max_bytes=1000, timeout=0.5
            )
        assert time.monotonic() - started < 2
    finally:
        server.shutdown()
        server.server_close()


# --- Section 7: the error table -------------------------------------------------------------

AUTH = instagram.InstagramAuthError
RATE = instagram.InstagramRateLimitError
TRANSIENT = instagram.InstagramTransientError
PERMISSION = instagram.InstagramPermissionError
CONFIG = instagram.InstagramConfigurationError

ERROR_TABLE = [
    (190, None, AUTH),
    (190, 458, AUTH),
    (190, 459, AUTH),
    (190, 460, AUTH),
    (190, 463, AUTH),
    (190, 464, AUTH),
    (190, 467, AUTH),
    (190, 492, AUTH),
    (102, None, AUTH),
    (4, None, RATE),
    (17, None, RATE),
    (32, None, RATE),
    (613, None, RATE),
    (80002, None, RATE),
    (341, None, RATE),
    (368, None, RATE),
    (1, None, TRANSIENT),
    (2, None, TRANSIENT),
    (10, None, PERMISSION),
    (200, None, PERMISSION),
    (230, None, PERMISSION),
    (299, None, PERMISSION),
    (3, None, CONFIG),
    (100, None, CONFIG),
]


def _call_graph_function(name):
    """Each Graph-host function, called the way its users call it."""
    if name == "exchange_for_long_lived":
        return instagram.exchange_for_long_lived(short_lived_token=fakes.SHORT_TOKEN)
    if name == "refresh_long_lived":
        return instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    if name == "get_profile":
        return instagram.get_profile(access_token=fakes.LONG_TOKEN)
    if name == "media_list":
        return instagram.media_list(access_token=fakes.LONG_TOKEN, limit=50)
    raise AssertionError(name)


GRAPH_FUNCTIONS = {
    "exchange_for_long_lived": fakes.LONG_LIVED_URL,
    "refresh_long_lived": fakes.REFRESH_URL,
    "get_profile": fakes.ME_URL,
    "media_list": fakes.MEDIA_URL,
}


@pytest.mark.parametrize("error_type", ["OAuthException", "IGApiException"])
@pytest.mark.parametrize(("code", "subcode", "expected"), ERROR_TABLE)
def test_every_row_of_the_error_table_maps_to_its_class(rsps, code, subcode, expected, error_type):
    fakes.register_refresh(
        rsps, status=400, body=fakes.graph_error(code, subcode, error_type=error_type)
    )
    with pytest.raises(instagram.InstagramError) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    exc = info.value
    assert type(exc) is expected
    assert (exc.code, exc.subcode, exc.error_type, exc.status) == (code, subcode, error_type, 400)
    assert exc.retryable is issubclass(expected, TRANSIENT)
    assert exc.message == fakes.graph_error(code)["error"]["message"]


@pytest.mark.parametrize("function", GRAPH_FUNCTIONS)
@pytest.mark.parametrize(
    ("code", "expected"), [(190, AUTH), (17, RATE), (2, TRANSIENT), (10, PERMISSION), (100, CONFIG)]
)
def test_every_graph_function_classifies_errors_the_same_way(rsps, function, code, expected):
    rsps.add(responses.GET, GRAPH_FUNCTIONS[function], json=fakes.graph_error(code), status=400)
    with pytest.raises(expected):
        _call_graph_function(function)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (190, 500, AUTH),
        (190, 401, AUTH),
        (190, 200, AUTH),
        (10, 503, PERMISSION),
        (100, 502, CONFIG),
        (4, 400, RATE),
        (17, 200, RATE),
        (2, 400, TRANSIENT),
        (3, 403, CONFIG),
    ],
)
def test_the_code_decides_not_the_http_status(rsps, code, status, expected):
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(code), status=status)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is expected
    assert info.value.status == status


@pytest.mark.parametrize("is_transient", [True, "true"])
def test_is_transient_marks_an_otherwise_unknown_error_transient(rsps, is_transient):
    body = fakes.graph_error(9007, message="Please retry", is_transient=is_transient)
    rsps.add(responses.GET, fakes.ME_URL, json=body, status=400)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is TRANSIENT


def test_an_unknown_code_is_a_plain_instagram_error_that_is_not_retried(rsps):
    rsps.add(
        responses.GET, fakes.ME_URL, json=fakes.graph_error(9007, is_transient=False), status=400
    )
    with pytest.raises(instagram.InstagramError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is instagram.InstagramError
    assert not info.value.retryable


def test_an_unknown_code_with_a_5xx_is_transient(rsps):
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(9007), status=500)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is TRANSIENT


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("body", ["", "<html><body>Bad Gateway</body></html>", '{"unexpected": 1}'])
def test_http_5xx_with_or_without_a_body_is_transient(rsps, status, body):
    rsps.add(responses.GET, fakes.REFRESH_URL, body=body, status=status)
    with pytest.raises(instagram.InstagramError) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is TRANSIENT
    assert info.value.status == status and info.value.retryable


def test_a_bare_429_is_a_rate_limit_with_its_retry_after(rsps):
    rsps.add(responses.GET, fakes.REFRESH_URL, body="", status=429, headers={"Retry-After": "90"})
    with pytest.raises(RATE) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    assert info.value.retry_after == 90.0


@pytest.mark.parametrize("status", [400, 401, 404])
def test_a_4xx_without_a_readable_error_is_malformed(rsps, status):
    rsps.add(responses.GET, fakes.ME_URL, body="<html>Not here</html>", status=status)
    with pytest.raises(instagram.InstagramMalformedResponseError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"X-Business-Use-Case-Usage": fakes.business_use_case_usage(minutes=7)}, 420.0),
        ({"Retry-After": "120"}, 120.0),
        (
            {
                "X-Business-Use-Case-Usage": fakes.business_use_case_usage(minutes=3),
                "Retry-After": "600",
            },
            600.0,
        ),
        ({"X-Business-Use-Case-Usage": fakes.business_use_case_usage(minutes=0)}, None),
        ({"X-App-Usage": '{"call_count": 100, "total_cputime": 5, "total_time": 9}'}, None),
        ({"X-Business-Use-Case-Usage": "not json"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
    ids=[
        "buc-minutes",
        "retry-after",
        "largest-wins",
        "buc-zero",
        "app-usage",
        "garbage",
        "http-date",
        "none",
    ],
)
def test_rate_limit_retry_after_comes_from_the_usage_headers(rsps, headers, retry_after):
    rsps.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(80002),
        status=400,
        headers=headers,
    )
    with pytest.raises(RATE) as info:
        instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError("connection refused"),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
    ],
    ids=["connect-timeout", "read-timeout", "connection", "ssl", "chunked"],
)
@pytest.mark.parametrize("function", GRAPH_FUNCTIONS)
def test_timeouts_and_connection_errors_are_transient(rsps, function, error):
    rsps.add(responses.GET, GRAPH_FUNCTIONS[function], body=error)
    with pytest.raises(instagram.InstagramError) as info:
        _call_graph_function(function)
    assert type(info.value) is TRANSIENT


def test_code_exchange_timeouts_are_transient(rsps):
    rsps.add(responses.POST, fakes.CODE_EXCHANGE_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(instagram.InstagramError) as info:
        instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    assert type(info.value) is TRANSIENT


def test_an_unusable_base_url_is_a_configuration_error(settings):
    settings.INSTAGRAM_GRAPH_URL = "graph.instagram.com"  # no scheme
    with pytest.raises(instagram.InstagramError) as info:
        instagram.get_profile(access_token=fakes.LONG_TOKEN)
    assert type(info.value) is CONFIG
    assert "INSTAGRAM_GRAPH_URL" in str(info.value)


# --- Settings are read per request -------------------------------------------------------


def test_user_agent_and_timeouts_follow_settings_changes_between_calls(rsps, settings):
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.me())
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.me())
    instagram.get_profile(access_token=fakes.LONG_TOKEN)
    settings.INSTAGRAM_USER_AGENT = "tokenagent-other/2.0"
    settings.INSTAGRAM_CONNECT_TIMEOUT = 1.0
    settings.INSTAGRAM_READ_TIMEOUT = 2.0
    instagram.get_profile(access_token=fakes.LONG_TOKEN)

    first, second = rsps.calls
    assert_common(first)
    assert_common(second, user_agent="tokenagent-other/2.0", timeout=(1.0, 2.0))


def test_hosts_follow_settings(rsps, settings):
    settings.INSTAGRAM_API_URL = "http://ig.internal:8080/"
    settings.INSTAGRAM_GRAPH_URL = "http://ig.internal:8080/graph"
    rsps.add(
        responses.POST,
        "http://ig.internal:8080/oauth/access_token",
        json=fakes.code_exchange_observed(),
    )
    rsps.add(
        responses.GET, "http://ig.internal:8080/graph/refresh_access_token", json=fakes.refreshed()
    )
    instagram.exchange_code(code=CODE, redirect_uri=REDIRECT_URI)
    instagram.refresh_long_lived(access_token=fakes.LONG_TOKEN)
    assert len(rsps.calls) == 2


def test_one_session_is_reused_within_a_process():
    assert instagram._session() is instagram._session()


# --- Nothing secret leaks --------------------------------------------------------------------


def _everything_said_about(exc):
    """str, repr, args and the readable line of the error and of every exception
    chained to it (what a traceback or an error reporter would print)."""
    said = [exc.describe(), exc.message]
    seen = exc
    while seen is not None:
        said += [str(seen), repr(seen), repr(seen.args), *traceback.format_exception_only(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(said)


def _assert_no_secret(text, *secrets):
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"(?<![A-Za-z_])(access_token|client_secret)=(?!\[redacted\])", text)
    assert not re.search(r"(?<![A-Za-z_])code=(?!\[redacted\]|\d|None)", text)


def _refresh_unreachable(rsps):
    url = f"{fakes.REFRESH_URL}?grant_type=ig_refresh_token&access_token={ODD_TOKEN}"
    rsps.add(responses.GET, fakes.REFRESH_URL, body=fakes.connection_error_for(url))
    return lambda: instagram.refresh_long_lived(access_token=ODD_TOKEN)


def _long_lived_unreachable(rsps):
    url = (
        f"{fakes.LONG_LIVED_URL}?grant_type=ig_exchange_token&client_secret={APP_SECRET}"
        f"&access_token={ODD_TOKEN}"
    )
    rsps.add(responses.GET, fakes.LONG_LIVED_URL, body=fakes.connection_error_for(url))
    return lambda: instagram.exchange_for_long_lived(short_lived_token=ODD_TOKEN)


def _profile_error_echoes_token(rsps):
    message = f"Invalid OAuth access token {ODD_TOKEN} (secret {APP_SECRET})"
    rsps.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190, message=message), status=400)
    return lambda: instagram.get_profile(access_token=ODD_TOKEN)


def _refresh_rate_limited_echoing_token(rsps):
    message = f"Limit reached for https://graph.instagram.com/x?access_token={ODD_TOKEN}"
    rsps.add(
        responses.GET, fakes.REFRESH_URL, json=fakes.graph_error(4, message=message), status=400
    )
    return lambda: instagram.refresh_long_lived(access_token=ODD_TOKEN)


@pytest.mark.parametrize(
    "arrange",
    [
        _refresh_unreachable,
        _long_lived_unreachable,
        _profile_error_echoes_token,
        _refresh_rate_limited_echoing_token,
    ],
)
def test_no_token_or_secret_in_exceptions_or_logs(rsps, caplog, arrange):
    call = arrange(rsps)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(instagram.InstagramError) as info:
        call()

    exc = info.value
    # The raw requests exception (whose message holds the URL) is not chained.
    assert exc.__cause__ is None and exc.__context__ is None
    _assert_no_secret(_everything_said_about(exc), ODD_TOKEN, APP_SECRET)
    assert caplog.records, "the client logs what it did"
    _assert_no_secret(caplog.text, ODD_TOKEN, APP_SECRET)


def test_code_exchange_errors_never_carry_the_code_or_the_secret(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    echo = f"Matching code {CODE} was not found (client_secret={APP_SECRET})"
    rsps.add(
        responses.POST, fakes.CODE_EXCHANGE_URL, json=fakes.code_exchange_error(echo), status=400
    )
    rsps.add(
        responses.POST,
        fakes.CODE_EXCHANGE_URL,
        body=fakes.connection_error_for(
            f"{fakes.CODE_EXCHANGE_URL}?client_secret={APP_SECRET}&code={CODE}"
        ),
    )
    for _ in range(2):
        with pytest.raises(instagram.InstagramError) as info:
            instagram.exchange_code(code=CODE + "#_", redirect_uri=REDIRECT_URI)
        _assert_no_secret(_everything_said_about(info.value), CODE, APP_SECRET)
    _assert_no_secret(caplog.text, CODE, APP_SECRET)


def test_paging_next_urls_stay_out_of_errors_and_logs(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    nxt = fakes.media_next_url(after="P2", count=3, token=ODD_TOKEN)
    first = fakes.media_page(count=3)
    first["paging"]["next"] = nxt
    rsps.add(responses.GET, fakes.MEDIA_URL, json=first)
    rsps.add(responses.GET, nxt, body=fakes.connection_error_for(nxt))

    with pytest.raises(TRANSIENT) as info:
        instagram.media_list(access_token=ODD_TOKEN, limit=50)

    _assert_no_secret(_everything_said_about(info.value), ODD_TOKEN)
    _assert_no_secret(caplog.text, ODD_TOKEN)
    assert f"/v21.0/{fakes.USER_ID}/media" in caplog.text  # the path is logged, not the query


def test_a_real_refused_connection_does_not_leak_the_url(settings, caplog):
    # No `responses` here: requests' own ConnectionError, whose message embeds the URL.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.INSTAGRAM_GRAPH_URL = f"http://127.0.0.1:{port}"
    settings.INSTAGRAM_CONNECT_TIMEOUT = 2.0
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TRANSIENT) as info:
        instagram.exchange_for_long_lived(short_lived_token=ODD_TOKEN)
    _assert_no_secret(_everything_said_about(info.value), ODD_TOKEN, APP_SECRET)
    _assert_no_secret(caplog.text, ODD_TOKEN, APP_SECRET)


def test_result_reprs_hide_tokens():
    short = instagram.ShortLivedToken(access_token=ODD_TOKEN, user_id="1", permissions=())
    grant = instagram.TokenGrant(access_token=ODD_TOKEN, expires_at=NOW)
    for obj in (short, grant):
        assert ODD_TOKEN not in repr(obj)
