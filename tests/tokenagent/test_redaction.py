"""tokenagent/redaction.py: redact() scrubs tokens, secrets and OAuth codes in every
shape they travel in and leaves Instagram's diagnostics readable; the logging
filter applies it to final messages and tracebacks."""

import io
import json
import logging
from urllib.parse import urlencode

import pytest

from tests.child_python import child_env, run_python
from tokenagent.redaction import REDACTED, RedactingFilter, redact

TOKEN = "IGAAFakeLongLived9z8y7x"
# Not IGAA-shaped: only the key=value / "key": "value" rules can catch it.
ODD = "EAAGoddValue0123456789abcdef"
SECRET = "app-secret-0f9e8d7c6b5a"
CODE = "AQDx7fakeCode0123456789"


# --- redact(): what goes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token={ODD}",
        f"https://graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret={SECRET}&access_token={ODD}",
        f"https://graph.instagram.com/v21.0/17841400000000001/media?access_token={ODD}&limit=25&after=QVFIUa",
        f"GET /refresh_access_token?access_token={ODD} HTTP/1.1",
        f"https://example.com/next?u=https%3A%2F%2Fgraph.instagram.com%2Fme%3Faccess_token%3D{ODD}",
    ],
    ids=["refresh-url", "exchange-url", "paging-next", "request-line", "url-encoded"],
)
def test_urls_lose_their_tokens_and_secrets(text):
    out = redact(text)
    assert ODD not in out and SECRET not in out
    assert f"access_token={REDACTED}" in out or f"access_token%3D{REDACTED}" in out


def test_json_bodies_lose_tokens_but_keep_their_other_fields():
    body = json.dumps({"access_token": ODD, "token_type": "bearer", "expires_in": 5183944})
    out = redact(body)
    assert ODD not in out
    assert json.loads(out) == {
        "access_token": REDACTED,
        "token_type": "bearer",
        "expires_in": 5183944,
    }


def test_our_own_token_response_is_redacted_under_both_keys():
    body = json.dumps({"token": ODD, "Token": ODD, "account": "acme", "username": "acme_bakery"})
    out = json.loads(redact(body))
    assert out == {
        "token": REDACTED,
        "Token": REDACTED,
        "account": "acme",
        "username": "acme_bakery",
    }


def test_code_exchange_form_bodies_lose_secret_and_code():
    body = urlencode(
        {
            "client_id": "1234567890123456",
            "client_secret": SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": "https://agent.example.com/oauth/instagram/callback/",
            "code": CODE,
        }
    )
    out = redact(body)
    assert SECRET not in out and CODE not in out
    assert "client_id=1234567890123456" in out
    assert "grant_type=authorization_code" in out
    assert "redirect_uri=https%3A%2F%2Fagent.example.com%2Foauth%2Finstagram%2Fcallback%2F" in out
    # A form body that starts with the code.
    assert CODE not in redact(f"code={CODE}&grant_type=authorization_code")


@pytest.mark.parametrize(
    "obj",
    [
        {"access_token": ODD, "user_id": "1"},
        {"client_secret": SECRET, "code": CODE},
        {"access_token": [ODD]},  # parse_qs output
        json.dumps({"access_token": ODD}),  # a repr of a JSON string: escaped quotes
        ("Bearer", f"Authorization: Bearer {ODD}"),
    ],
    ids=["dict", "form-dict", "parse-qs", "escaped-json", "bearer-header"],
)
def test_python_reprs_lose_secrets(obj):
    out = redact(repr(obj))
    assert ODD not in out and SECRET not in out and CODE not in out
    assert REDACTED in out


def test_bare_instagram_tokens_are_scrubbed_anywhere():
    out = redact(f"refreshed {TOKEN}; old one was IGQVJfakeOldBasicDisplay123.")
    assert TOKEN not in out and "IGQVJfake" not in out
    assert out == f"refreshed {REDACTED}; old one was {REDACTED}."


def test_callback_codes_are_scrubbed_but_state_and_fragment_stay():
    url = (
        f"https://agent.example.com/oauth/instagram/callback/?code={CODE}&state=Zk3q9x2LmP0aVb7T#_"
    )
    out = redact(url)
    assert CODE not in out
    assert out == (
        "https://agent.example.com/oauth/instagram/callback/"
        f"?code={REDACTED}&state=Zk3q9x2LmP0aVb7T#_"
    )


@pytest.mark.parametrize(
    "line",
    [
        f"INSTAGRAM_APP_SECRET={SECRET}",
        f"SECRET_KEY={SECRET}",
        f"WEBHOOK_SECRET: {SECRET}",
        f"signed_request={SECRET}.eyJhbGciOiJITUFDLVNIQTI1NiJ9",
        f"access_token: {ODD}",
    ],
)
def test_settings_style_lines_lose_their_values(line):
    out = redact(line)
    assert SECRET not in out and ODD not in out


def test_redact_accepts_any_object_and_is_idempotent():
    once = redact({"access_token": ODD, "code": CODE})
    assert isinstance(once, str) and ODD not in once and CODE not in once
    assert redact(once) == once
    assert redact(f"client_secret={SECRET})") == f"client_secret={REDACTED})"


# --- redact(): what stays -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"error": {"message": "Invalid OAuth access token - Cannot parse access token", '
        '"type": "OAuthException", "code": 190, "error_subcode": 463, '
        '"fbtrace_id": "AbCdEfFakeTrace1"}}',
        '{"error_type": "OAuthException", "code": 400, '
        '"error_message": "Matching code was not found or was already used"}',
        "Error validating access token: Session has expired on Friday, 14-Mar-25 02:00:00 PDT.",
        "Instagram answered HTTP 400: error code=190 subcode=463",
        "InstagramAuthError('Session expired', code=190, subcode=463, status=400)",
        '{"token_type": "bearer", "expires_in": 5183944, "user_id": "17841400000000001"}',
        "https://www.instagram.com/oauth/authorize?client_id=1234567890123456&response_type=code"
        "&scope=instagram_business_basic&state=Zk3q9x2LmP0aVb7T",
        "refresh of acme failed: token expired (code 190/463); the refresh token job will retry",
    ],
    ids=[
        "graph-error",
        "code-exchange-error",
        "expired-prose",
        "code-equals-number",
        "error-repr",
        "token-answer-fields",
        "authorize-url",
        "prose-about-tokens",
    ],
)
def test_non_secret_diagnostics_survive_unchanged(text):
    assert redact(text) == text


# --- The logging filter ----------------------------------------------------------------------


@pytest.fixture
def redacting_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction.probe")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_filter_redacts_the_final_message_built_from_percent_args(redacting_logger):
    logger, stream = redacting_logger
    url = f"https://graph.instagram.com/refresh_access_token?access_token={ODD}"
    logger.info("GET %s for %s", url, "acme")
    logger.info("token %(t)s for %(a)s", {"t": TOKEN, "a": "acme"})
    logger.warning("exchange body %r", {"client_secret": SECRET, "code": CODE})
    out = stream.getvalue()
    for secret in (ODD, TOKEN, SECRET, CODE):
        assert secret not in out
    assert (
        "GET https://graph.instagram.com/refresh_access_token?access_token=[redacted] for acme"
        in out
    )
    assert "token [redacted] for acme" in out


def test_filter_redacts_exception_tracebacks_including_chained_ones(redacting_logger):
    logger, stream = redacting_logger
    try:
        try:
            raise ConnectionError(f"Max retries exceeded with url: /me?access_token={ODD}")
        except ConnectionError as inner:
            raise RuntimeError(f"refresh failed for {TOKEN}") from inner
    except RuntimeError:
        logger.exception("refresh of %s crashed", "acme")
    out = stream.getvalue()
    assert ODD not in out and TOKEN not in out
    assert "Traceback (most recent call last)" in out
    assert "ConnectionError: Max retries exceeded with url: /me?access_token=[redacted]" in out
    assert "RuntimeError: refresh failed for [redacted]" in out
    assert "refresh of acme crashed" in out


def test_filter_redacts_stack_info(redacting_logger):
    logger, stream = redacting_logger
    access_token = ODD  # noqa: F841 (only the frame's source line is printed, not locals)
    logger.info("where am I", stack_info=True)
    assert "Stack (most recent call last)" in stream.getvalue()
    assert ODD not in stream.getvalue()


def test_filter_survives_a_record_whose_args_do_not_fit(redacting_logger):
    logger, stream = redacting_logger
    logger.info("two placeholders %s %s with access_token=" + ODD, "only-one")
    out = stream.getvalue()
    assert ODD not in out
    assert "two placeholders" in out


def test_a_record_filtered_by_two_handlers_stays_intact():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "access_token=%s", (ODD,), None)
    f = RedactingFilter()
    assert f.filter(record) and f.filter(record)
    assert record.getMessage() == "access_token=[redacted]"


# --- The project's LOGGING, configured for real ------------------------------------------------

LOGGING_PROBE = r"""
import logging, sys
import django
django.setup()  # applies settings.LOGGING through dictConfig, as every process does

TOKEN, SECRET, CODE = sys.argv[1:4]
logging.getLogger("accounts.services").info(
    "refreshed via https://graph.instagram.com/refresh_access_token?access_token=%s", TOKEN
)
logging.getLogger("accounts.instagram").warning("exchange %s", {"client_secret": SECRET})
logging.getLogger("django.request").error(
    "Internal Server Error: /oauth/instagram/callback/?code=%s&state=s", CODE
)
try:
    raise ValueError("boom access_token=" + TOKEN)
except ValueError:
    logging.getLogger("accounts.tasks").exception("task failed for %s", "acme")
"""


@pytest.mark.parametrize("debug", ["0", "1"])
def test_the_project_logging_config_redacts_every_handler(tmp_path, debug):
    env = child_env(
        tmp_path / "var",
        SECRET_KEY="logging-test-secret-key",
        DEBUG=debug,  # DEBUG adds Django's own console handler unless LOGGING replaces it
        LOG_LEVEL="DEBUG",
    )
    result = run_python(LOGGING_PROBE, ODD, SECRET, CODE, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    for secret in (ODD, SECRET, CODE):
        assert secret not in everything
    # All four records came out, on stdout, redacted.
    assert "refresh_access_token?access_token=[redacted]" in result.stdout
    assert "{'client_secret': '[redacted]'}" in result.stdout
    assert "callback/?code=[redacted]&state=s" in result.stdout
    assert "ValueError: boom access_token=[redacted]" in result.stdout
