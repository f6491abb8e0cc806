"""The agent's WSGI application (``tokenagent.wsgi``, fast path included) plus
``/bench/hello``: a raw WSGI hello-world in the same process under the same
server, the server's ceiling that the benchmark divides every figure by,
``/bench/django/<url>``: an agent URL through Django's handler alone (the fast
path's figures beside Django's), and
``/bench/sleep/<seconds>``: a request that holds its thread that long (a slow
OAuth callback, for the server drills in drills.py)."""

import time
from collections.abc import Callable, Iterable
from typing import Any

from tokenagent.wsgi import application as agent
from tokenagent.wsgi import django_application

HELLO = b"hello"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/bench/hello":
        start_response("200 OK", HELLO_HEADERS)
        return [HELLO]
    if environ.get("PATH_INFO", "").startswith("/bench/sleep/"):
        time.sleep(min(30.0, float(environ["PATH_INFO"].rsplit("/", 1)[1])))
        start_response("200 OK", HELLO_HEADERS)
        return [HELLO]
    if environ.get("PATH_INFO", "").startswith("/bench/django/"):
        # The same URL through Django's handler alone, without the fast path.
        environ["PATH_INFO"] = environ["PATH_INFO"].removeprefix("/bench/django")
        return django_application(environ, start_response)
    return agent(environ, start_response)
