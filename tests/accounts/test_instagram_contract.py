"""The real client (accounts/instagram.py) over real HTTP against the sandbox
Instagram on the live server, in both response shapes: the whole login flow, a
refresh, and every failure the client tells apart, with the exact requests the
sandbox received (its journal), and no token, secret or code in any raised
exception or log record.

Logs: every logger at DEBUG, urllib3 (which logs request lines with their query
strings) and django.server included. Records are read as the project's logging
configuration leaves them (its redacting filter sits on the root's handler,
ahead of pytest's), and the messages of the agent's own loggers (``accounts.*``)
also as emitted, before any redaction: the client must never log a credential."""

import logging
import time
import traceback
from datetime import timedelta
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
import requests
from django.test.testcases import QuietWSGIRequestHandler
from django.utils import timezone

from accounts import instagram
from accounts.sandbox import state, tokens

APP_ID = "1234567890123456"
APP_SECRET = "contract-app-secret-5a4b3c2d1e"
USER_AGENT = "tokenagent-contract/1.0 (+https://agent.example.com)"
REDIRECT_URI = "https://agent.example.com/oauth/instagram/callback/"
LONG_EXPIRES_IN = 5183944
LOGGERS = ("", "accounts", "urllib3", "requests", "django", "django.server", "django.request")


@pytest.fixture
def no_nagle(monkeypatch):
    """The live server writes headers and body separately; with Nagle on, every
    keep-alive answer waits ~40 ms for the client's delayed ACK (sandbox_server
    turns it off too). Applies to connections accepted while the test runs."""
    monkeypatch.setattr(QuietWSGIRequestHandler, "disable_nagle_algorithm", True)


@pytest.fixture(params=["observed", "documented"])
def sandbox(request, no_nagle, sandbox_live, settings):
    """The sandbox on the live server, answering in one response shape; the client
    configured with app credentials of its own."""
    settings.INSTAGRAM_APP_ID = APP_ID
    settings.INSTAGRAM_APP_SECRET = APP_SECRET
    settings.INSTAGRAM_USER_AGENT = USER_AGENT
    settings.INSTAGRAM_GRAPH_VERSION = "v21.0"
    settings.INSTAGRAM_SCOPES = ["instagram_business_basic"]
    sandbox_live.shape(request.param)
    sandbox_live.shape_name = request.param
    return sandbox_live


class Secrets:
    """Every credential a test handles; at the end none may be in the logs."""

    def __init__(self) -> None:
        self.values = {APP_SECRET}

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v)

    def assert_absent_from(self, text: str, what: str) -> None:
        # As sent in a URL too: sandbox tokens hold ":" (%3A once encoded).
        forms = {f for v in self.values for f in (v, quote(v, safe=""), quote_plus(v))}
        leaked = [f for f in forms if f in text]
        # Say which kind leaked, never the value itself.
        assert not leaked, f"{len(leaked)} credential(s) appear in {what}"

    def assert_absent_from_exception(self, exc: BaseException) -> None:
        self.assert_absent_from(str(exc), "str(exception)")
        self.assert_absent_from(repr(exc), "repr(exception)")
        self.assert_absent_from(repr(exc.args), "exception.args")
        self.assert_absent_from("".join(traceback.format_exception(exc)), "the traceback")


class RawMessages(logging.Handler):
    """Keeps each record's message as it was emitted, before any filter further up
    (the project's redacting one is on the root's handler) rewrites it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture
def secrets(caplog):
    """Capture every log record at DEBUG (urllib3 logs request lines with their
    query strings there; django.server does not propagate, so it is tapped
    directly), and check at teardown that no credential reached any of them, and
    that the agent's own loggers never even emitted one."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    server = logging.getLogger("django.server")
    server.addHandler(caplog.handler)
    raw = RawMessages()
    ours = logging.getLogger("accounts")
    ours.addHandler(raw)
    found = Secrets()
    try:
        yield found
    finally:
        server.removeHandler(caplog.handler)
        ours.removeHandler(raw)
    # caplog.records and caplog.text would be the teardown phase's only.
    records = [r for when in ("setup", "call") for r in caplog.get_records(when)]
    text = "\n".join(
        [caplog.handler.format(r) for r in records]
        + [r.getMessage() for r in records]
        + [r.exc_text or "" for r in records]
        + [logging.Formatter().formatException(r.exc_info) for r in records if r.exc_info]
    )
    found.assert_absent_from(text, "the captured log records")
    found.assert_absent_from("\n".join(raw.lines), "the agent's own log messages (unredacted)")


def journal(sandbox):
    resp = sandbox.http.get(f"{sandbox.base_url}/_control/requests", timeout=10)
    resp.raise_for_status()
    return resp.json()["requests"]


def fp(value):
    return state.fingerprint(value)


def sandbox_path(sandbox, path):
    return urlsplit(sandbox.base_url).path + path


def consent(sandbox, *, username="acme_bakery", state_value="Zk3q9x2LmP0aVb7T"):
    """What the browser does: open the client's authorize URL, press Allow. Returns
    the Location Instagram sends the browser back to."""
    url = instagram.authorize_url(redirect_uri=REDIRECT_URI, state=state_value)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert "SANDBOX Instagram" in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    resp = requests.post(
        sandbox.authorize_url(),
        data={**query, "username": username, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302
    return resp.headers["Location"]


def login_code(sandbox, secrets, **kw):
    code = parse_qs(urlsplit(consent(sandbox, **kw)).query)["code"][0]
    secrets.add(code)
    return code


def short_lived(sandbox, secrets, username="acme_bakery"):
    short = instagram.exchange_code(
        code=login_code(sandbox, secrets, username=username), redirect_uri=REDIRECT_URI
    )
    secrets.add(short.access_token)
    return short.access_token


def minted(sandbox, secrets, **kw):
    token = sandbox.mint(**kw)["access_token"]
    secrets.add(token)
    return token


# --- the whole flow --------------------------------------------------------------------------


def test_full_login_flow(sandbox, secrets, settings, monkeypatch):
    # Pages of 5 so the 12 sandbox posts take three pages (paging.next twice).
    monkeypatch.setattr(instagram, "MEDIA_PAGE_LIMIT", 5)
    url = instagram.authorize_url(redirect_uri=REDIRECT_URI, state="Zk3q9x2LmP0aVb7T")
    assert url.startswith(settings.INSTAGRAM_AUTHORIZE_URL + "?")

    location = consent(sandbox)
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    assert parse_qs(parts.query)["state"] == ["Zk3q9x2LmP0aVb7T"]
    assert parts.fragment == "_"
    code = parse_qs(parts.query)["code"][0]
    secrets.add(code)

    # A code pasted by hand carries Instagram's "#_": the client strips it.
    short = instagram.exchange_code(code=code + "#_", redirect_uri=REDIRECT_URI)
    secrets.add(short.access_token)
    assert short.user_id == tokens.user_id_for("acme_bakery")
    assert isinstance(short.user_id, str)
    assert short.permissions == ("instagram_business_basic",)

    before = timezone.now()
    grant = instagram.exchange_for_long_lived(short_lived_token=short.access_token)
    after = timezone.now()
    secrets.add(grant.access_token)
    assert grant.access_token != short.access_token
    assert grant.token_type == "bearer"
    assert (
        before + timedelta(seconds=LONG_EXPIRES_IN)
        <= grant.expires_at
        <= after + timedelta(seconds=LONG_EXPIRES_IN)
    )

    profile = instagram.get_profile(access_token=grant.access_token)
    assert profile.user_id == tokens.user_id_for("acme_bakery")
    assert profile.id == tokens.app_scoped_id_for("acme_bakery")
    assert profile.username == "acme_bakery"
    assert profile.account_type == "BUSINESS"
    assert profile.media_count == 12
    assert requests.get(profile.profile_picture_url, timeout=10).status_code == 200

    items = instagram.media_list(access_token=grant.access_token, limit=50)
    assert len({m.id for m in items}) == len(items) == 12
    assert {m.media_type for m in items} == {"IMAGE", "VIDEO", "CAROUSEL_ALBUM"}
    assert [m.timestamp for m in items] == sorted((m.timestamp for m in items), reverse=True)
    image = instagram.fetch_image(items[0].media_url, max_bytes=1_000_000, timeout=10)
    assert image.content_type == "image/jpeg" and image.content.startswith(b"\xff\xd8")

    first_seven = instagram.media_list(access_token=grant.access_token, limit=7)
    assert [m.id for m in first_seven] == [m.id for m in items[:7]]

    assert sandbox.calls() == {
        "authorize": 1,  # consent() opened the window
        "code_exchange": 1,
        "long_lived": 1,
        "refresh": 0,
        "me": 1,
        "media": 5,  # 3 pages, then 2 for the first seven
        "cdn": 1,
    }
    sent = journal(sandbox)
    by_endpoint: dict[str, list[dict]] = {}
    for entry in sent:
        by_endpoint.setdefault(entry["endpoint"], []).append(entry)
    assert {e["user_agent"] for e in sent if e["endpoint"] != "authorize"} == {USER_AGENT}

    [exchange] = by_endpoint["code_exchange"]
    assert (exchange["method"], exchange["path"]) == (
        "POST",
        sandbox_path(sandbox, "/oauth/access_token"),
    )
    assert exchange["content_type"] == "application/x-www-form-urlencoded"
    assert exchange["query"] == {}
    assert exchange["form"] == {
        "client_id": [APP_ID],
        "client_secret": [fp(APP_SECRET)],
        "grant_type": ["authorization_code"],
        "redirect_uri": [REDIRECT_URI],
        "code": [fp(code)],  # without "#_"
    }

    [long_lived] = by_endpoint["long_lived"]
    assert (long_lived["method"], long_lived["path"]) == (
        "GET",
        sandbox_path(sandbox, "/access_token"),
    )
    assert long_lived["query"] == {
        "grant_type": ["ig_exchange_token"],
        "client_secret": [fp(APP_SECRET)],
        "access_token": [fp(short.access_token)],
    }

    [me] = by_endpoint["me"]
    assert (me["method"], me["path"]) == ("GET", sandbox_path(sandbox, "/v21.0/me"))
    assert me["query"] == {
        "fields": [instagram.PROFILE_FIELDS],
        "access_token": [fp(grant.access_token)],
    }

    media = by_endpoint["media"]
    edge = sandbox_path(sandbox, f"/v21.0/{tokens.user_id_for('acme_bakery')}/media")
    assert [(e["method"], e["path"]) for e in media] == [
        ("GET", sandbox_path(sandbox, "/v21.0/me/media")),
        ("GET", edge),  # paging.next names the IG user's edge, like Graph's
        ("GET", edge),
        ("GET", sandbox_path(sandbox, "/v21.0/me/media")),
        ("GET", edge),
    ]
    assert media[0]["query"] == {
        "fields": [instagram.MEDIA_FIELDS],
        "limit": ["5"],
        "access_token": [fp(grant.access_token)],
    }
    # Later pages are exactly paging.next: the same fields, limit and token, once each.
    for entry in media[1:3]:
        assert set(entry["query"]) == {"access_token", "fields", "limit", "after"}
        assert entry["query"]["access_token"] == [fp(grant.access_token)]
        assert entry["query"]["fields"] == [instagram.MEDIA_FIELDS]
        assert entry["query"]["limit"] == ["5"]
        assert len(entry["query"]["after"]) == 1
    assert media[1]["query"]["after"] != media[2]["query"]["after"]
    assert [e["query"] for e in media[3:]] == [e["query"] for e in media[:2]]
    [cdn] = by_endpoint["cdn"]
    assert "access_token" not in cdn["query"]  # the CDN never sees the token


def test_the_flow_for_another_user_keys_on_that_users_ids(sandbox, secrets):
    short = instagram.exchange_code(
        code=login_code(sandbox, secrets, username="corner_cafe"), redirect_uri=REDIRECT_URI
    )
    secrets.add(short.access_token)
    grant = instagram.exchange_for_long_lived(short_lived_token=short.access_token)
    secrets.add(grant.access_token)

    profile = instagram.get_profile(access_token=grant.access_token)

    assert profile.username == "corner_cafe"
    assert profile.user_id == short.user_id == tokens.user_id_for("corner_cafe")


def test_refresh_of_a_48_hour_old_token(sandbox, secrets):
    old = minted(sandbox, secrets, age_hours=48)

    before = timezone.now()
    grant = instagram.refresh_long_lived(access_token=old)
    secrets.add(grant.access_token)

    assert grant.access_token != old
    assert grant.token_type == "bearer"
    assert grant.expires_at - before == pytest.approx(
        timedelta(seconds=LONG_EXPIRES_IN), abs=timedelta(seconds=10)
    )
    assert instagram.get_profile(access_token=grant.access_token).username == "acme_bakery"
    [call, _me] = journal(sandbox)
    assert (call["endpoint"], call["method"], call["path"]) == (
        "refresh",
        "GET",
        sandbox_path(sandbox, "/refresh_access_token"),
    )
    # GET, no app secret, nothing but the grant and the token.
    assert call["query"] == {"grant_type": ["ig_refresh_token"], "access_token": [fp(old)]}
    assert call["form"] == {}
    assert sandbox.calls()["refresh"] == 1


def test_a_refreshed_token_can_be_refreshed_again_later(sandbox, secrets):
    # The refreshed token is 60 days from now: the sandbox checks the 24 h floor on it too.
    grant = instagram.refresh_long_lived(access_token=minted(sandbox, secrets, age_hours=25))
    secrets.add(grant.access_token)
    with pytest.raises(instagram.InstagramTokenTooYoungError) as excinfo:
        instagram.refresh_long_lived(access_token=grant.access_token)
    secrets.assert_absent_from_exception(excinfo.value)


# --- failures --------------------------------------------------------------------------------


def call_refresh(sandbox, secrets):
    return instagram.refresh_long_lived(access_token=minted(sandbox, secrets))


def call_profile(sandbox, secrets):
    return instagram.get_profile(access_token=minted(sandbox, secrets))


def call_media(sandbox, secrets):
    return instagram.media_list(access_token=minted(sandbox, secrets), limit=50)


def call_long_lived(sandbox, secrets):
    return instagram.exchange_for_long_lived(short_lived_token=short_lived(sandbox, secrets))


def call_code_exchange(sandbox, secrets):
    return instagram.exchange_code(code=login_code(sandbox, secrets), redirect_uri=REDIRECT_URI)


CALLS = {
    "refresh": call_refresh,
    "me": call_profile,
    "media": call_media,
    "long_lived": call_long_lived,
    "code_exchange": call_code_exchange,
}

Auth = instagram.InstagramAuthError
RateLimit = instagram.InstagramRateLimitError
Transient = instagram.InstagramTransientError
Malformed = instagram.InstagramMalformedResponseError
TooYoung = instagram.InstagramTokenTooYoungError
Permission = instagram.InstagramPermissionError
Configuration = instagram.InstagramConfigurationError
CodeExchange = instagram.InstagramCodeExchangeError

# (endpoint, failure kind, exception class, code, subcode)
FAILURES = [
    ("refresh", "error190", Auth, 190, None),
    *[("me", f"error190_{sub}", Auth, 190, sub) for sub in (458, 459, 460, 463, 464, 467, 492)],
    ("refresh", "error190_460", Auth, 190, 460),
    ("media", "error190_463", Auth, 190, 463),
    ("long_lived", "error190", Auth, 190, None),
    ("me", "error102", Auth, 102, None),
    ("refresh", "rate_limit", RateLimit, 4, None),
    ("me", "rate_limit_17", RateLimit, 17, None),
    ("code_exchange", "rate_limit", RateLimit, 4, None),
    ("refresh", "http500", Transient, None, None),
    ("refresh", "http503", Transient, None, None),
    ("me", "http503", Transient, None, None),
    ("code_exchange", "http500", Transient, None, None),
    ("refresh", "transient1", Transient, 1, None),
    ("media", "transient2", Transient, 2, None),
    ("refresh", "non_json", Malformed, None, None),
    ("me", "non_json", Malformed, None, None),
    ("code_exchange", "non_json", Malformed, None, None),
    ("refresh", "empty_json", Malformed, None, None),
    ("me", "empty_json", Malformed, None, None),
    ("media", "empty_json", Malformed, None, None),
    ("long_lived", "empty_json", Malformed, None, None),
    ("refresh", "too_young", TooYoung, 100, None),
    ("me", "permission10", Permission, 10, None),
    ("me", "config3", Configuration, 3, None),
    ("refresh", "config100", Configuration, 100, None),
    ("code_exchange", "invalid_code", CodeExchange, 400, None),
]


@pytest.mark.parametrize(
    ("endpoint", "kind", "error", "code", "subcode"),
    FAILURES,
    ids=[f"{e}-{k}" for e, k, *_ in FAILURES],
)
def test_each_failure_raises_its_exception(sandbox, secrets, endpoint, kind, error, code, subcode):
    sandbox.fail(endpoint, [kind])

    with pytest.raises(instagram.InstagramError) as excinfo:
        CALLS[endpoint](sandbox, secrets)

    exc = excinfo.value
    assert type(exc) is error
    assert (exc.code, exc.subcode) == (code, subcode)
    assert exc.retryable is issubclass(error, (Transient, Malformed))
    if error is RateLimit:
        assert exc.retry_after == 60  # estimated_time_to_regain_access: 1 minute
    if kind in ("http500", "http503"):
        assert exc.status == int(kind[4:])
    assert sandbox.calls()[endpoint] == 1  # one request: the client itself never retries
    secrets.assert_absent_from_exception(exc)


@pytest.mark.parametrize("endpoint", ["refresh", "me", "code_exchange"])
def test_a_slow_answer_beyond_the_read_timeout_is_transient(sandbox, secrets, settings, endpoint):
    settings.INSTAGRAM_READ_TIMEOUT = 0.3
    sandbox.fail(endpoint, ["slow:1"])

    with pytest.raises(instagram.InstagramError) as excinfo:
        CALLS[endpoint](sandbox, secrets)

    assert type(excinfo.value) is Transient
    assert "did not answer in time" in str(excinfo.value)
    assert excinfo.value.__context__ is None and excinfo.value.__cause__ is None
    assert sandbox.calls()[endpoint] == 1
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_slow_answer_within_the_read_timeout_is_fine(sandbox, secrets, settings):
    settings.INSTAGRAM_READ_TIMEOUT = 2
    sandbox.delay("me", 0.3)
    assert call_profile(sandbox, secrets).username == "acme_bakery"


def test_a_token_younger_than_24_hours_is_too_young(sandbox, secrets):
    with pytest.raises(instagram.InstagramError) as excinfo:
        instagram.refresh_long_lived(access_token=minted(sandbox, secrets, age_hours=2))
    assert type(excinfo.value) is TooYoung
    assert excinfo.value.code == 100
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_fresh_login_cannot_be_refreshed_the_same_day(sandbox, secrets):
    grant = instagram.exchange_for_long_lived(short_lived_token=short_lived(sandbox, secrets))
    secrets.add(grant.access_token)
    with pytest.raises(TooYoung):
        instagram.refresh_long_lived(access_token=grant.access_token)


def test_an_expired_token_is_an_auth_error_463(sandbox, secrets):
    token = minted(sandbox, secrets, age_hours=61 * 24, expires_in_days=-1)
    for call in (
        lambda: instagram.refresh_long_lived(access_token=token),
        lambda: instagram.get_profile(access_token=token),
        lambda: instagram.media_list(access_token=token, limit=50),
    ):
        with pytest.raises(instagram.InstagramError) as excinfo:
            call()
        assert type(excinfo.value) is Auth
        assert (excinfo.value.code, excinfo.value.subcode) == (190, 463)
        assert "Session has expired" in str(excinfo.value)
        secrets.assert_absent_from_exception(excinfo.value)


def test_a_revoked_token_is_an_auth_error_460(sandbox, secrets):
    token = minted(sandbox, secrets, age_hours=30)
    sandbox.revoke("acme_bakery")
    with pytest.raises(instagram.InstagramError) as excinfo:
        instagram.refresh_long_lived(access_token=token)
    assert type(excinfo.value) is Auth
    assert excinfo.value.subcode == 460
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_long_lived_token_cannot_be_exchanged_again(sandbox, secrets):
    with pytest.raises(Auth) as excinfo:
        instagram.exchange_for_long_lived(short_lived_token=minted(sandbox, secrets))
    assert excinfo.value.code == 190
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_reused_code_is_a_code_exchange_error(sandbox, secrets):
    code = login_code(sandbox, secrets)
    first = instagram.exchange_code(code=code, redirect_uri=REDIRECT_URI)
    secrets.add(first.access_token)

    with pytest.raises(instagram.InstagramError) as excinfo:
        instagram.exchange_code(code=code + "#_", redirect_uri=REDIRECT_URI)

    exc = excinfo.value
    assert type(exc) is CodeExchange
    assert exc.retryable is False
    assert "already used" in str(exc)
    assert sandbox.calls()["code_exchange"] == 2
    secrets.assert_absent_from_exception(exc)


def test_a_code_sent_with_another_redirect_uri_is_a_code_exchange_error(sandbox, secrets):
    code = login_code(sandbox, secrets)
    with pytest.raises(CodeExchange) as excinfo:
        instagram.exchange_code(code=code, redirect_uri=REDIRECT_URI + "other/")
    assert "redirect_uri" in str(excinfo.value)
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_code_for_another_app_is_a_code_exchange_error(sandbox, secrets, settings):
    code = login_code(sandbox, secrets)
    settings.INSTAGRAM_APP_ID = "6543210987654321"
    with pytest.raises(CodeExchange) as excinfo:
        instagram.exchange_code(code=code, redirect_uri=REDIRECT_URI)
    assert "Invalid platform app" in str(excinfo.value)
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_persistent_outage_fails_every_call_until_it_ends(sandbox, secrets):
    token = minted(sandbox, secrets)
    sandbox.mode("*", "http503")
    for call in (
        lambda: instagram.get_profile(access_token=token),
        lambda: instagram.media_list(access_token=token, limit=50),
        lambda: instagram.refresh_long_lived(access_token=token),
    ):
        with pytest.raises(Transient):
            call()
    sandbox.mode("*", None)
    assert instagram.get_profile(access_token=token).username == "acme_bakery"
    assert sandbox.calls()["me"] == 2


def test_a_failure_midway_through_the_media_pages_surfaces(sandbox, secrets, monkeypatch):
    monkeypatch.setattr(instagram, "MEDIA_PAGE_LIMIT", 5)
    token = minted(sandbox, secrets)
    # The first page answers (a zero-second delay), the second is refused.
    sandbox.fail("media", ["slow:0", "error190_460"])

    with pytest.raises(Auth) as excinfo:
        instagram.media_list(access_token=token, limit=50)

    assert excinfo.value.subcode == 460
    assert sandbox.calls()["media"] == 2
    secrets.assert_absent_from_exception(excinfo.value)
    sandbox.fail("media", ["slow:0", "http500"])
    with pytest.raises(Transient) as transient:
        instagram.media_list(access_token=token, limit=50)
    secrets.assert_absent_from_exception(transient.value)


# --- media: hostile paging and the CDN -------------------------------------------------------


def test_a_paging_loop_ends_with_the_posts_read(sandbox, secrets):
    sandbox.mode("media", "paging_loop")  # every page's next is the page itself
    items = instagram.media_list(access_token=minted(sandbox, secrets), limit=50)
    assert len(items) == 12
    assert sandbox.calls()["media"] == 2  # the loop was followed once, then seen for what it is


def test_a_next_leading_off_the_graph_host_is_refused_before_any_request(
    sandbox, secrets, monkeypatch
):
    monkeypatch.setattr(instagram, "MEDIA_PAGE_LIMIT", 5)
    sandbox.fail("media", ["paging_offhost"])
    with pytest.raises(Malformed) as excinfo:
        instagram.media_list(access_token=minted(sandbox, secrets), limit=50)
    assert "collector.example.net" in str(excinfo.value)
    assert sandbox.calls()["media"] == 1
    secrets.assert_absent_from_exception(excinfo.value)


def test_cut_off_json_is_malformed(sandbox, secrets):
    sandbox.fail("media", ["bad_json"])
    with pytest.raises(Malformed):
        instagram.media_list(access_token=minted(sandbox, secrets), limit=50)


@pytest.fixture
def picture_url(sandbox, secrets):
    return instagram.media_list(access_token=minted(sandbox, secrets), limit=1)[0].media_url


# (CDN failure kind, exception class, HTTP status it carries)
CDN_FAILURES = [
    ("http500", Transient, 500),
    ("http503", Transient, 503),
    ("http429", RateLimit, 429),
    ("http403", instagram.InstagramImageError, 403),
    ("http404", instagram.InstagramImageError, 404),
    ("not_image", instagram.InstagramImageError, 200),
    ("too_large", instagram.InstagramImageError, 200),
]


@pytest.mark.parametrize(
    ("kind", "error", "status"), CDN_FAILURES, ids=[k for k, *_ in CDN_FAILURES]
)
def test_each_cdn_failure_raises_its_exception(sandbox, secrets, picture_url, kind, error, status):
    sandbox.fail("cdn", [kind])
    with pytest.raises(instagram.InstagramError) as excinfo:
        instagram.fetch_image(picture_url, max_bytes=8 * 1024 * 1024, timeout=10)
    assert type(excinfo.value) is error
    assert excinfo.value.status == status
    if kind == "http429":
        assert excinfo.value.retry_after == 120
    assert sandbox.calls()["cdn"] == 1
    secrets.assert_absent_from_exception(excinfo.value)


def test_a_cdn_body_that_lies_about_its_type_still_downloads(sandbox, secrets, picture_url):
    # Telling a picture from HTML labelled image/jpeg is accounts/images.py's job.
    sandbox.fail("cdn", ["image_lie"])
    got = instagram.fetch_image(picture_url, max_bytes=1_000_000, timeout=10)
    assert (got.content_type, got.content[:6]) == ("image/jpeg", b"<html>")


def test_an_expired_cdn_url_is_an_image_error(sandbox, secrets):
    sandbox._post("cdn", ttl_seconds=-5)
    url = instagram.media_list(access_token=minted(sandbox, secrets), limit=1)[0].media_url
    with pytest.raises(instagram.InstagramImageError) as excinfo:
        instagram.fetch_image(url, max_bytes=1_000_000, timeout=10)
    assert excinfo.value.status == 403
    assert "expired or deleted" in str(excinfo.value)


def test_a_slow_cdn_is_transient(sandbox, secrets, picture_url):
    sandbox.fail("cdn", ["slow:2"])
    started = time.monotonic()
    with pytest.raises(Transient, match="in time"):
        instagram.fetch_image(picture_url, max_bytes=1_000_000, timeout=0.5)
    assert time.monotonic() - started < 1.5
