"""Runs the agent's real processes for the integration tests (tests/integration/)
and the benchmarks (bench/): process groups, a private Redis and PostgreSQL, the
Procfile's lines, a Celery worker, the standalone sandbox Instagram, load and
memory sampling.

Neither product code nor tests: it imports only the runtime requirements (no
pytest), so ``make bench-*`` works with ``requirements.txt`` alone, and nothing
under accounts/ or tokenagent/ imports it.
"""
