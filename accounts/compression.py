"""gzip for the public answers that hold no secret (the feed's JSON and scripts), as
a pure function of a ``serving_policy.Answer`` and the request's
``Accept-Encoding``, so that the views and the WSGI fast path (``accounts.fastpath``)
encode alike.

The rule is Django's ``GZipMiddleware`` (a body under 200 bytes is left alone;
otherwise ``Vary: Accept-Encoding``, then gzip when the browser names it and it is
shorter, the strong ``ETag`` made weak, ``Content-Encoding: gzip``), plus
``Vary: Accept-Encoding`` on every 200 and 304 (a 304 stands for the encoded 200).
Unlike the middleware it adds no random bytes to the gzip header: that guards
against BREACH, which needs a secret in the body beside the attacker's input, and
these bodies hold none. So the encoding is deterministic: the encoded body of a 200
is kept per ``ETag`` (which names the body) and a repeated read costs no
compression.
"""

from __future__ import annotations

import gzip
import re

from accounts.serving_policy import Answer, Headers, Visit

MIN_LENGTH = 200  # GZipMiddleware's: shorter bodies are not worth it
_ACCEPTS_GZIP = re.compile(r"\bgzip\b")
_DELIMITER = re.compile(r"\s*,\s*")

# Encoded 200 bodies by ETag, per process; bounded (emptied when full).
_ENCODED: dict[str, bytes] = {}
ENCODED_MAX = 256


def with_vary(headers: Headers, name: str) -> Headers:
    """``headers`` with ``name`` in ``Vary`` (Django's ``patch_vary_headers``: the
    header keeps its place; a new one goes last)."""
    for index, (key, value) in enumerate(headers):
        if key.lower() == "vary":
            names = _DELIMITER.split(value)
            if name.lower() not in {n.lower() for n in names}:
                names.append(name)
            merged = "*" if "*" in names else ", ".join(names)
            return (*headers[:index], (key, merged), *headers[index + 1 :])
    return (*headers, ("Vary", name))


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


def gzipped(visit: Visit, answer: Answer) -> Answer:
    """``answer`` as sent to a browser whose request is ``visit``."""
    body = answer.body.encode() if isinstance(answer.body, str) else answer.body
    headers = answer.headers
    vary = answer.status in (200, 304) or len(body) >= MIN_LENGTH
    if vary:
        headers = with_vary(headers, "Accept-Encoding")
    if len(body) < MIN_LENGTH or not _ACCEPTS_GZIP.search(visit.accept_encoding or ""):
        if headers is answer.headers:
            return answer
        return Answer(answer.status, answer.body, answer.content_type, headers, answer.quiet)
    tag = next((v for k, v in headers if k == "ETag"), None) if answer.status == 200 else None
    encoded = _ENCODED.get(tag) if tag else None
    if encoded is None:
        encoded = _gzip(body)
        if tag:
            if len(_ENCODED) >= ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[tag] = encoded
    if len(encoded) >= len(body):
        return Answer(answer.status, answer.body, answer.content_type, headers, answer.quiet)
    headers = tuple(
        (k, "W/" + v if k == "ETag" and v.startswith('"') else v) for k, v in headers
    ) + (("Content-Encoding", "gzip"),)
    return Answer(answer.status, encoded, answer.content_type, headers, answer.quiet)
