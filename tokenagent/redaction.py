"""Keep tokens and secrets out of every message, log line and error page.

Instagram puts the token in query strings (``access_token=``), in ``paging.next``
URLs and in response bodies; the app secret travels as ``client_secret=``. One
function scrubs all of them, and a logging filter applies it to every record.
"""

import logging
import re

# key=value in query strings and forms; "key": "value" in JSON and reprs.
_PARAM = re.compile(
    r"""(?P<key>(?<![A-Za-z_])(?:access_token|client_secret|token|signed_request)["']?\s*[=:]\s*["']?)"""
    r"""(?P<value>[^&\s"',}]+)""",
    re.IGNORECASE,
)
# An OAuth code in a callback URL is a one-hour credential too.
_QUERY_CODE = re.compile(r"(?P<key>[?&]code=)(?P<value>[^&\s#\"']+)")
# Instagram Login tokens are commonly seen to start with IGAA/IGQ (undocumented),
# sandbox tokens too; scrub a bare one wherever it appears.
_BARE_TOKEN = re.compile(r"\b(?:IGAA|IGQ)[A-Za-z0-9_\-.:]{8,}")

REDACTED = "[redacted]"


def redact(text: object) -> str:
    """Return ``text`` as a string with token-like values replaced."""
    s = str(text)
    s = _PARAM.sub(lambda m: m.group("key") + REDACTED, s)
    s = _QUERY_CODE.sub(lambda m: m.group("key") + REDACTED, s)
    return _BARE_TOKEN.sub(REDACTED, s)


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
        return True
