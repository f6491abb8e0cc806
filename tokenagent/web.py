"""The web process: Granian serving a WSGI application, the Procfile's
``web: python -m tokenagent.web tokenagent.wsgi:application``.

Every setting of the server is here, in one place, and each answers one of the
things a Heroku web dyno needs (bench/token_endpoints measures the choice against
gunicorn; bench/token_endpoints/drills.py checks the rest):

- ``$PORT`` on all interfaces (``WEB_HOST`` narrows it, e.g. to 127.0.0.1 in
  tests), ``$WEB_CONCURRENCY`` worker processes (Heroku sets it per dyno size);
- ``BLOCKING_THREADS`` Python threads per worker: a slow request (an OAuth
  callback waiting on Instagram) holds one of them, the token reads keep the rest;
- idle keep-alive connections held ``KEEP_ALIVE_SECONDS``, longer than the 90 s
  for which Heroku's router keeps them: closing first would race the router's
  next request on that connection (Granian's command line stops at 60 s);
- SIGTERM: the workers stop accepting, finish what is in flight and exit; a
  worker still busy ``STOP_SECONDS`` later is killed, within Heroku's 30 s;
- recycling: a worker whose memory passes ``MAX_RSS_MB`` is replaced (the new one
  starts before the old one stops), and one that crashes is respawned. Not on a
  timer: every respawn resets connections queued at the old worker, and Heroku
  restarts each dyno daily anyway;
- the application is loaded, and the heap frozen, before the workers fork, so
  they share its pages (and a respawned worker starts at once);
- no access log (Heroku's router logs each request), Granian's own log lines go
  through the redacting filter, one line each, like Django's.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

BLOCKING_THREADS = 4
KEEP_ALIVE_SECONDS = 100
STOP_SECONDS = 20
MAX_RSS_MB = 200

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "tokenagent.redaction.RedactingFilter"}},
    "formatters": {
        "line": {
            "()": "tokenagent.logformat.OneLineFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "access": {"()": "tokenagent.logformat.OneLineFormatter", "fmt": "%(message)s"},
    },
    "handlers": {
        name: {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": name,
            "filters": ["redact"],
        }
        for name in ("line", "access")
    },
    "loggers": {
        "_granian": {"handlers": ["line"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def load_application(target: str) -> Callable[..., Any]:
    """The WSGI application ``module:name``; in a worker, already imported when
    the worker was forked from the process that preloaded it."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name or "application")


def preload(target: str) -> None:
    """Finish loading the application (the URLconf and every view it imports, the
    fast path's configuration; else each worker would on its first request), then
    freeze the heap so that the workers' garbage collector leaves the shared pages
    alone instead of copying them."""
    from django.urls import get_resolver

    application = load_application(target)
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and the views
    config = getattr(application, "config", None)
    if config is not None:
        config()  # the fast path's routes and checks (accounts/fastpath.py)
    gc.collect()
    gc.freeze()


def server_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """Granian's settings (keyword arguments of ``granian.server.Server``)."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    return {
        "address": environ.get("WEB_HOST") or "0.0.0.0",  # noqa: S104 - a dyno's $PORT
        "port": int(environ.get("PORT") or 8000),
        "interface": Interfaces.WSGI,
        "workers": int(environ.get("WEB_CONCURRENCY") or 1),
        "blocking_threads": BLOCKING_THREADS,
        "http1_settings": HTTP1Settings(header_read_timeout=KEEP_ALIVE_SECONDS * 1000),
        "log_dictconfig": LOGGING,
        "log_access": False,
        "respawn_failed_workers": True,
        "workers_max_rss": MAX_RSS_MB,
        "workers_kill_timeout": STOP_SECONDS,
    }


def main(argv: list[str] = sys.argv) -> None:
    if len(argv) != 2 or ":" not in argv[1]:
        raise SystemExit("usage: python -m tokenagent.web MODULE:APPLICATION")
    target = argv[1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenagent.settings")
    from granian.server import Server

    web = Server(target, **server_options(os.environ))  # configures Granian's logging
    preload(target)
    web.serve(target_loader=load_application)


if __name__ == "__main__":
    main()
