"""Fixtures of the sandbox's own tests."""

import pytest

from accounts.sandbox import state


@pytest.fixture
def clean_sandbox():
    """The in-process sandbox (mounted on /sandbox/) with no scripted state, before
    and after the test."""
    state.reset()
    yield
    state.reset()
