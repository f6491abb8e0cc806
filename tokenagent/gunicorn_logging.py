"""gunicorn's own logs, redacted and one line per event (``--logger-class``).

gunicorn writes its access and error logs itself, outside Django's LOGGING. Its
access log prints each request line, and the OAuth callback's request line
carries the one-hour authorization ``code`` (Heroku's buildpack turns the access
log on with ``GUNICORN_CMD_ARGS=--access-logfile -``). This logger puts the same
redacting filter and one-line formatting on both.
"""

import logging

from gunicorn.glogging import Logger

from tokenagent.logformat import OneLineFormatter
from tokenagent.redaction import RedactingFilter


class RedactingLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactingFilter) for f in log.filters):
                log.addFilter(RedactingFilter())
            for handler in log.handlers:
                fmt = handler.formatter or logging.Formatter()
                handler.setFormatter(OneLineFormatter(fmt._fmt, fmt.datefmt))
