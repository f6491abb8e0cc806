"""The refresh policy: pure functions of model instances (unsaved here) and ``now``.
No test in this module touches the database: pytest-django refuses any query
without the ``django_db`` mark, so these would fail if the policy ever queried."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts import refresh_policy as policy
from accounts.models import AccessToken, InstagramAccount

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# --- The due decision -----------------------------------------------------------------


def _pair(*, age, expires_in, frequency="", status="active", refreshed_ago=None):
    account = InstagramAccount(slug="x", status=status, refresh_frequency=frequency)
    token = AccessToken(
        issued_at=NOW - age,
        expires_at=NOW + expires_in,
        refreshed_at=NOW - refreshed_ago if refreshed_ago is not None else None,
    )
    return token, account


H, D = timedelta(hours=1), timedelta(days=1)


@pytest.mark.parametrize(
    ("case", "age", "expires_in", "frequency", "due"),
    [
        ("fresh token", 0 * H, 60 * D, "daily", False),
        ("23 h old, daily", 23 * H, 59 * D, "daily", False),
        ("25 h old, daily", 25 * H, 59 * D, "daily", True),
        ("25 h old, weekly", 25 * H, 59 * D, "weekly", False),
        ("6 days old, weekly", 6 * D, 54 * D, "weekly", False),
        ("7 days old, weekly", 7 * D, 53 * D, "weekly", True),
        ("29 days old, monthly", 29 * D, 31 * D, "monthly", False),
        ("30 days old, monthly", 30 * D, 30 * D, "monthly", True),
        ("inside the safety window", 2 * D, 6 * D, "monthly", True),
        ("exactly at the window's edge", 2 * D, 7 * D, "monthly", True),
        ("just outside the window", 2 * D, 7 * D + H, "monthly", False),
        ("23 h old inside the window: the 24 h floor wins", 23 * H, 3 * D, "monthly", False),
        ("expired", 61 * D, -1 * D, "daily", False),
        ("expires this second", 60 * D, 0 * D, "daily", False),
    ],
)
def test_token_is_due_table(case, age, expires_in, frequency, due):
    token, account = _pair(age=age, expires_in=expires_in, frequency=frequency)
    assert policy.token_is_due(token=token, account=account, now=NOW) is due, case


@pytest.mark.parametrize(
    ("setting", "age", "due"),
    [("daily", 25 * H, True), ("weekly", 25 * H, False), ("monthly", 8 * D, False)],
)
def test_default_frequency_comes_from_settings(settings, setting, age, due):
    settings.REFRESH_FREQUENCY = setting
    token, account = _pair(age=age, expires_in=50 * D)
    assert policy.token_is_due(token=token, account=account, now=NOW) is due


def test_per_account_frequency_overrides_the_setting(settings):
    settings.REFRESH_FREQUENCY = "monthly"
    token, account = _pair(age=2 * D, expires_in=58 * D, frequency="daily")
    assert policy.token_is_due(token=token, account=account, now=NOW)


def test_interval_counts_from_the_last_refresh():
    token, account = _pair(age=10 * D, expires_in=58 * D, frequency="weekly", refreshed_ago=2 * D)
    assert not policy.token_is_due(token=token, account=account, now=NOW)


@pytest.mark.parametrize("status", ["needs_reconnect", "disconnected"])
def test_only_active_accounts_are_due(status):
    token, account = _pair(age=8 * D, expires_in=5 * D, frequency="daily", status=status)
    assert not policy.token_is_due(token=token, account=account, now=NOW)


def test_no_token_is_never_due():
    assert not policy.token_is_due(token=None, account=InstagramAccount(status="active"), now=NOW)


def test_next_refresh_at_is_when_due_turns_true():
    token, account = _pair(age=2 * D, expires_in=58 * D, frequency="weekly")
    at = policy.token_next_refresh_at(token=token, account=account)
    assert at == NOW + 5 * D
    assert not policy.token_is_due(token=token, account=account, now=at - timedelta(seconds=1))
    assert policy.token_is_due(token=token, account=account, now=at)


def test_next_refresh_at_respects_window_and_24h_floor():
    token, account = _pair(age=1 * H, expires_in=3 * D, frequency="monthly")
    assert policy.token_next_refresh_at(token=token, account=account) == NOW + 23 * H
    token, account = _pair(age=3 * D, expires_in=10 * D, frequency="monthly")
    assert policy.token_next_refresh_at(token=token, account=account) == NOW + 3 * D


def test_the_minimum_token_age_is_instagrams_24_hours():
    assert policy.MIN_TOKEN_AGE == timedelta(hours=24)


def test_the_safety_window_comes_from_settings(settings):
    settings.REFRESH_SAFETY_WINDOW_DAYS = 10
    assert policy.safety_window() == timedelta(days=10)
    token, account = _pair(age=2 * D, expires_in=10 * D, frequency="monthly")
    assert policy.token_is_due(token=token, account=account, now=NOW)
    settings.REFRESH_SAFETY_WINDOW_DAYS = 7
    assert not policy.token_is_due(token=token, account=account, now=NOW)


def test_last_renewed_is_the_later_of_issue_and_refresh():
    token, _ = _pair(age=10 * D, expires_in=50 * D, refreshed_ago=3 * D)
    assert policy.token_last_renewed_at(token=token) == NOW - 3 * D
    token, _ = _pair(age=10 * D, expires_in=50 * D)
    assert policy.token_last_renewed_at(token=token) == NOW - 10 * D


# --- Account health ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expires_in", "health"),
    [
        ("active", 52 * D, "ok"),
        ("active", 7 * D + H, "ok"),
        ("active", 7 * D, "expiring"),
        ("active", 6 * D, "expiring"),
        ("active", 0 * D, "needs_reconnect"),
        ("active", -1 * H, "needs_reconnect"),
        ("needs_reconnect", 52 * D, "needs_reconnect"),
        ("disconnected", 52 * D, "disconnected"),
        ("disconnected", -1 * D, "disconnected"),
    ],
)
def test_account_health(status, expires_in, health):
    token, account = _pair(age=8 * D, expires_in=expires_in, status=status)
    assert policy.account_health(account=account, token=token, now=NOW) == health


def test_an_account_without_a_token_needs_reconnecting():
    account = InstagramAccount(status="active")
    assert policy.account_health(account=account, token=None, now=NOW) == "needs_reconnect"
    account = InstagramAccount(status="disconnected")
    assert policy.account_health(account=account, token=None, now=NOW) == "disconnected"


def test_unhealthy_states_are_the_ones_that_page():
    assert policy.UNHEALTHY == {"expiring", "needs_reconnect"}
    assert set(policy.HEALTH_STATES) == {"ok", "expiring", "needs_reconnect", "disconnected"}


# --- The heartbeat ---------------------------------------------------------------------------


def test_the_heartbeat_is_stale_after_twice_the_tick_period(settings):
    settings.REFRESH_TICK_SECONDS = 900
    assert policy.heartbeat_stale_after() == timedelta(minutes=30)
    assert policy.heartbeat_is_stale(last_run=None, now=NOW)  # never ran
    assert not policy.heartbeat_is_stale(last_run=NOW - timedelta(minutes=29), now=NOW)
    assert not policy.heartbeat_is_stale(last_run=NOW - timedelta(minutes=30), now=NOW)
    assert policy.heartbeat_is_stale(last_run=NOW - timedelta(minutes=31), now=NOW)
    settings.REFRESH_TICK_SECONDS = 3600
    assert not policy.heartbeat_is_stale(last_run=NOW - timedelta(minutes=119), now=NOW)
    assert policy.heartbeat_is_stale(last_run=NOW - timedelta(minutes=121), now=NOW)


# --- Where the policy sits among the modules -----------------------------------------------


def _module_imports(module: str) -> set[str]:
    """The modules ``module`` imports at its top level (not inside functions)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _reaches(names: set[str], prefix: str) -> bool:
    return any(n == prefix or n.startswith(prefix + ".") for n in names)


def test_the_policy_needs_no_database_and_no_other_layer():
    imports = _module_imports("accounts.refresh_policy")
    assert not _reaches(imports, "django.db")
    for layer in ("accounts.services", "accounts.selectors", "accounts.alerts", "accounts.tasks"):
        assert not _reaches(imports, layer), layer


def test_selectors_import_no_service_and_tasks_import_services_only_when_they_run():
    for selector in ("accounts.selectors.refresh", "accounts.selectors.health"):
        imports = _module_imports(selector)
        for layer in ("accounts.services", "accounts.alerts", "accounts.tasks"):
            assert not _reaches(imports, layer), (selector, layer)
    tasks = _module_imports("accounts.tasks")
    assert not _reaches(tasks, "accounts.services") and not _reaches(tasks, "accounts.alerts")
    # Services (and alerts) queue tasks through a `_task` alias imported at the top.
    assert "accounts.tasks.send_alert" in _module_imports("accounts.alerts")
    assert "accounts.tasks.refresh_account" in _module_imports("accounts.services.refresher")
