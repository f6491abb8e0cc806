"""Keep tokens and secrets out of every message, log line and error page.

Instagram puts the token in query strings (``access_token=``), in ``paging.next``
URLs and in response bodies; the app secret travels as ``client_secret=``. One
function scrubs all of them, and a logging filter applies it to every record.
"""

import logging
import re

# Keys whose values are secrets: anything ending in token or secret (access_token,
# client_secret, INSTAGRAM_APP_SECRET, Token), SECRET_KEY and signed_request.
# token_type, error_subcode and the like are not keys here.
_KEY = r"(?:[A-Za-z0-9]+_)*(?:token|secret|secret_key|signed_request)"
# The same, when compound (access_token, not plain "token"): "access token: Session
# has expired" in Instagram's prose must stay readable, "access_token: x" must not.
_COMPOUND_KEY = (
    r"(?:(?:[A-Za-z0-9]+_)+(?:token|secret)|(?:[A-Za-z0-9]+_)*(?:secret_key|signed_request))"
)
_QUOTE = r"""(?:\\?["'])"""
# A value already replaced is left alone, so redact() can run twice.
_VALUE = r"""(?P<value>(?!\[redacted\])[^&\s"'\\,}\]<>#()]+)"""
_PARAMS = [
    # key=value in query strings and forms, also URL-encoded (%3D).
    re.compile(
        rf"(?P<key>(?<![A-Za-z0-9_]){_KEY}{_QUOTE}?\s*(?:=|%3D)\s*{_QUOTE}?){_VALUE}",
        re.IGNORECASE,
    ),
    # "key": "value" in JSON and Python reprs, also escaped (\"key\") and in lists.
    re.compile(
        rf"(?P<key>{_QUOTE}(?<![A-Za-z0-9_]){_KEY}{_QUOTE}\s*:\s*\[?\s*{_QUOTE}?){_VALUE}",
        re.IGNORECASE,
    ),
    # access_token: value, CLIENT_SECRET: value (unquoted, compound keys only).
    re.compile(
        rf"(?P<key>(?<![A-Za-z0-9_]){_COMPOUND_KEY}\s*:\s*{_QUOTE}?){_VALUE}",
        re.IGNORECASE,
    ),
]
# An OAuth code is a one-hour credential too: code=... in a callback URL or a form
# body, and "code": "..." as a string in JSON/reprs. Numeric codes (Instagram's
# error "code": 190, "code=400") are not credentials and stay readable.
_CODE_CHARS = r"""[^&\s#"',()\\]"""
_QUERY_CODE = re.compile(
    rf"(?P<key>(?:^|(?<=[?&\s]))code=)(?P<value>(?!\d+(?!{_CODE_CHARS})|\[redacted\]){_CODE_CHARS}+)"
)
_QUOTED_CODE = re.compile(
    r"""(?P<key>(?<![A-Za-z0-9_])code\\?["']\s*:\s*\\?["'])(?P<value>(?!\d+\\?["']|\[redacted\])[^"'\\\s]+)"""
)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})", re.IGNORECASE)
# Instagram Login tokens are commonly seen to start with IGAA/IGQ (undocumented),
# sandbox tokens too; scrub a bare one wherever it appears.
_BARE_TOKEN = re.compile(r"\b(?:IGAA|IGQ)[A-Za-z0-9_\-.:]{7,}[A-Za-z0-9_\-]")

REDACTED = "[redacted]"


def redact(text: object) -> str:
    """Return ``text`` as a string with token-like values replaced."""
    s = str(text)
    for pattern in (*_PARAMS, _QUERY_CODE, _QUOTED_CODE, _BEARER):
        s = pattern.sub(_keep_key, s)
    return _BARE_TOKEN.sub(REDACTED, s)


def _keep_key(match: re.Match[str]) -> str:
    return match.group("key") + REDACTED


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, so handlers never see the raw one.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
