"""Log lines as Heroku's log router wants them: one event, one line.

Logplex (and most log drains) split the stream on newlines, so a multi-line
traceback would arrive as dozens of separate events interleaved with other
dynos' lines. :class:`OneLineFormatter` keeps each record on one line by
escaping its line breaks; the text is otherwise unchanged (tokens are already
redacted by ``tokenagent.redaction.RedactingFilter`` on the handler).
"""

import logging


class OneLineFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output never contains a line break."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


def one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
