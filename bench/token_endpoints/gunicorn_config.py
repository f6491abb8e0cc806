"""gunicorn settings the command line cannot express, for the benchmark's gunicorn
candidate (``GUNICORN`` in bench/token_endpoints/__main__.py): the Procfile's web
line until Granian replaced it (tokenagent/web.py), kept here so that the figures
compare Granian with gunicorn as the agent ran it."""

import gc
from typing import Any

# Keep-alive connections stay with the worker process that accepted them, and
# Heroku's router (like any proxy) holds a few connections open for minutes. Left
# alone, one worker can end up serving nearly all the traffic on one core while the
# other idles, and it stays that way after every worker restart. Closing a
# connection after this many requests lets the client reconnect, and the kernel
# hands the new connection to whichever worker calls accept() first: the less
# busy one. nginx does the same with ``keepalive_requests``.
MAX_REQUESTS_PER_CONNECTION = 25


def pre_request(worker: Any, req: Any) -> None:
    worker.log.debug("%s %s", req.method, req.path)  # gunicorn's default hook
    if req.req_number >= MAX_REQUESTS_PER_CONNECTION:
        req.must_close = True  # answered with "Connection: close"


def when_ready(server: Any) -> None:
    """With ``--preload`` the master process holds the loaded app before it forks
    the workers. Finish loading it (the URLconf and every view it imports, and the
    token fast path's configuration, would otherwise load on the first request, in
    each new worker after every ``--max-requests`` restart), then freeze the heap:
    the garbage collector in a forked worker then leaves those objects alone
    instead of copying the pages it shares with the master into each worker."""
    if not server.cfg.preload_app:
        return
    from django.urls import get_resolver

    from tokenagent.wsgi import application

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and the views
    application.config()  # the token fast path's routes and checks (accounts/fastpath.py)
    gc.collect()
    gc.freeze()
