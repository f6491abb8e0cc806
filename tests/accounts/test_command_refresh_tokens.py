"""python manage.py refresh_tokens [ACCOUNT ...] [--force]: in-process, one quick
attempt per account, one line per account, non-zero exit when any refresh failed."""

import io
import subprocess
import sys
from datetime import timedelta

import pytest
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import RefreshAttempt, RefresherHeartbeat
from accounts.services import refresh_claim as claims
from tests import instagram_fakes as fakes
from tests.accounts.refresh_support import OLD_TOKEN, add_refresh_error, refresh_calls, token_of
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("refresh_tokens", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def by_slug(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


def test_sweep_refreshes_what_is_due_one_line_each(ig):
    make_account(username="due_one", slug="due-one")
    make_account(username="fresh_one", slug="fresh-one", token_age=timedelta(hours=5))
    make_account(username="gone_one", slug="gone-one", status="disconnected")
    fakes.register_refresh(ig)
    output, code = run()
    lines = by_slug(output)
    assert code == 0
    assert set(lines) == {"due-one", "fresh-one"}
    assert lines["due-one"].startswith("refreshed.")
    assert lines["fresh-one"].startswith("skipped, Not due")
    assert len(refresh_calls(ig)) == 1
    assert RefreshAttempt.objects.get().trigger == "command"
    # A sweep counts as a run of the refresher (cron-driven installs stay green).
    beat = RefresherHeartbeat.objects.get()
    assert (beat.accounts_due, beat.accounts_queued) == (1, 1)


def test_failure_exits_non_zero_without_long_backoff(ig):
    make_account(username="ok_one", slug="ok-one", token="IGAAokTokenokTokenokToken01")
    make_account(username="bad_one", slug="bad-one", token="IGAAbadTokenbadTokenbadTok1")

    def callback(request):
        if "IGAAbadToken" in request.url:
            return (500, {}, "{}")
        return (200, {}, '{"access_token": "IGAAnewOkToken000000001", "expires_in": 5183944}')

    ig.add_callback(responses.GET, fakes.REFRESH_URL, callback=callback)
    output, code = run()
    lines = by_slug(output)
    assert code == 1
    assert lines["ok-one"].startswith("refreshed.")
    assert lines["bad-one"].startswith("FAILED InstagramTransientError")
    assert len(refresh_calls(ig)) == 2  # one quick attempt each, no retries


def test_invalid_token_is_reported_as_failed(ig, account):
    add_refresh_error(ig, code=190)
    output, code = run("acme")
    assert code == 1
    assert by_slug(output)["acme"].startswith("FAILED invalid token")
    account.refresh_from_db()
    assert account.status == "needs_reconnect"


def test_named_accounts_only_and_unknown_names_fail(ig):
    make_account(username="one", slug="one")
    make_account(username="two", slug="two")
    fakes.register_refresh(ig)
    output, code = run("two", "nobody")
    lines = by_slug(output)
    assert code == 1
    assert set(lines) == {"two", "nobody"}
    assert lines["nobody"] == "FAILED no such account"
    assert not RefresherHeartbeat.objects.exists()  # not a sweep


def test_force_refreshes_young_tokens_and_reports_instagrams_refusal(ig):
    make_account(username="young", slug="young", token_age=timedelta(hours=2))
    make_account(username="young2", slug="young2", token_age=timedelta(hours=3))
    add_refresh_error(ig, code=100, message="The token must be at least 24 hours old")
    fakes.register_refresh(ig)
    output, code = run("young", "young2", "--force")
    lines = by_slug(output)
    assert lines["young"].startswith("skipped") and "24 hours" in lines["young"]
    assert lines["young2"].startswith("refreshed.")
    assert code == 0
    assert len(refresh_calls(ig)) == 2


def test_not_due_named_account_is_skipped_without_force(ig):
    make_account(username="young", slug="young", token_age=timedelta(hours=2))
    output, code = run("young")
    assert code == 0 and by_slug(output)["young"].startswith("skipped, Not due")
    assert refresh_calls(ig) == []


def test_busy_account_is_not_a_failure(ig, account):
    claims.account_refresh_claim(account=account, now=timezone.now())
    output, code = run("acme")
    assert code == 0 and by_slug(output)["acme"].startswith("busy")
    assert refresh_calls(ig) == []
    assert token_of(account).value == OLD_TOKEN


def test_output_never_contains_a_token(ig, account):
    add_refresh_error(ig, code=190, message=f"Cannot parse access token {OLD_TOKEN}")
    output, _ = run("acme")
    assert OLD_TOKEN not in output


def test_command_line_exit_status():
    """The real entry point parses its arguments (``--help`` exits 0)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "refresh_tokens", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0
    assert "--force" in result.stdout and "ACCOUNT" in result.stdout
