"""Benchmark of the public token endpoints (not a test): ``make bench-token`` or
``python -m bench.token_endpoints --help``.

Starts the app as the Procfile's ``web`` line does and under the other candidate
WSGI servers, seeds one account, and measures ``.json``, ``.js`` and a ``304``
against each server's ceiling (a raw WSGI hello-world in the same process) and a
bare Django view returning a constant JSON body, under the same server,
middleware and settings: throughput with wrk (keep-alive), and p50/p99 latency at a
fixed 500 requests/s with an open-loop client (fixed_rate.py)."""
