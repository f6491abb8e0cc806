"""gunicorn's own logs, redacted and one line per event (``--logger-class``).

gunicorn writes its access and error logs itself, outside Django's LOGGING. The
Procfile leaves the access log off (Heroku's router logs each request, and
``app.json`` keeps the buildpack's ``GUNICORN_CMD_ARGS=--access-logfile -`` out),
but whoever turns it on gets request lines, and the OAuth callback's request line
carries the one-hour authorization ``code``. This logger puts the same redacting
filter and one-line formatting on both.
"""

import logging
from typing import Any

from gunicorn.glogging import Logger

from tokenagent.logformat import OneLineFormatter
from tokenagent.redaction import RedactingFilter


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactingFilter) for f in log.filters):
                log.addFilter(RedactingFilter())
            for handler in log.handlers:
                fmt = handler.formatter or logging.Formatter()
                handler.setFormatter(OneLineFormatter(fmt._fmt, fmt.datefmt))
