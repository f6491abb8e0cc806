"""Shared fixtures, and the guard that makes CI fail when a test layer it needs
(PostgreSQL, Redis, a real worker, a browser) did not run.

CI sets TOKENAGENT_REQUIRE_LAYERS=postgres,redis,worker,browser; a layer counts
as run when at least one test carrying its marker passed (not skipped)."""

import os

import pytest

LAYERS = ("postgres", "redis", "worker", "browser")
_passed_layers: set[str] = set()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        for layer in LAYERS:
            if layer in report.keywords:
                _passed_layers.add(layer)


def pytest_sessionfinish(session, exitstatus):
    required = [x for x in os.environ.get("TOKENAGENT_REQUIRE_LAYERS", "").split(",") if x]
    if not required or session.config.option.collectonly:
        return
    # Only judge a whole-suite run; a run of selected tests is a developer's business.
    if session.config.args and session.config.args != ["tests"]:
        return
    missing = [layer for layer in required if layer not in _passed_layers]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if missing:
        if reporter:
            reporter.write_line(
                f"REQUIRED TEST LAYERS DID NOT RUN: {', '.join(missing)} "
                "(TOKENAGENT_REQUIRE_LAYERS)",
                red=True,
                bold=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.write_line(f"Test layers that ran: {', '.join(sorted(_passed_layers))}")


@pytest.fixture
def account(db):
    """An active account with a valid 8-day-old long-lived token."""
    from tests.factories import make_account

    return make_account(username="acme_bakery", slug="acme")


pytest_plugins = ["tests.browser", "tests.sandbox_control", "tests.feed_support"]
