"""Tests of the agent's real processes (web, worker, beat) on PostgreSQL and a
private Redis, and of the browser against it."""

import pytest

# The marks of a test that runs the agent's processes: the layers it exercises
# (tests/conftest.py checks that CI ran them), and a database its processes see.
PROCESS_MARKS = [
    pytest.mark.worker,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
