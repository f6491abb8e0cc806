"""Load benchmark (not a test): ``make bench-load`` or ``python -m bench.load --help``.

The Procfile's web and worker (with beat) on a private PostgreSQL and Redis, the
sandbox Instagram, a steady open-loop rate on the token endpoints for 60 s while
beat refreshes accounts; prints requests served, errors, p50/p99 latency and the
peak memory of web and worker."""
