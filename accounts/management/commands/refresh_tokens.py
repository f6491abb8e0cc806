"""``python manage.py refresh_tokens [ACCOUNT ...] [--force]``

Refreshes in this process, without a worker (Heroku Scheduler, cron): one quick
attempt per account, no backoff (long retries belong to the worker). Without
names it sweeps every account like a beat tick does (and records a heartbeat,
so a cron-driven install shows as alive); with names it takes those. ``--force``
refreshes even tokens that are not due or younger than 24 h: Instagram may
refuse those, and the line says so. One line per account; the exit status is 1
when any refresh failed (a skipped or busy account is not a failure).
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from accounts import instagram
from accounts.models import InstagramAccount, RefreshAttempt
from accounts.services.refresh import RefreshInProgress, token_refresh
from accounts.services.refresher import refresher_heartbeat_set_queued, refresher_tick

Outcome = RefreshAttempt.Outcome
FAILED = {
    Outcome.TRANSIENT,
    Outcome.RATE_LIMITED,
    Outcome.INVALID_TOKEN,
    Outcome.PERMISSION,
    Outcome.MALFORMED,
    Outcome.CONFIGURATION,
    Outcome.ERROR,
}


class Command(BaseCommand):
    help = "Refresh due Instagram tokens now, in this process (for cron / Heroku Scheduler)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account slugs")
        parser.add_argument(
            "--force",
            action="store_true",
            help="refresh even if not due or younger than 24 h (Instagram may refuse)",
        )

    def handle(self, *args, **options) -> None:
        names: list[str] = options["accounts"]
        force: bool = options["force"]
        now = timezone.now()
        if names:
            found = {a.slug: a for a in InstagramAccount.objects.filter(Q(slug__in=names))}
            missing = [n for n in names if n not in found]
            accounts = [found[n] for n in names if n in found]
        else:
            missing = []
            tick = refresher_tick(now=now)
            accounts = list(
                InstagramAccount.objects.exclude(status=InstagramAccount.Status.DISCONNECTED)
            )
        failures = 0
        for name in missing:
            self.stdout.write(self.style.ERROR(f"{name}: FAILED no such account"))
            failures += 1
        refreshed = 0
        for account in accounts:
            ok, line = self._refresh_one(account, force=force)
            failures += not ok
            refreshed += line.startswith(f"{account.slug}: refreshed")
            self.stdout.write(line if ok else self.style.ERROR(line))
        if not names:
            refresher_heartbeat_set_queued(heartbeat=tick.heartbeat, queued=refreshed)
        if failures:
            raise CommandError(f"{failures} refresh(es) failed", returncode=1)

    def _refresh_one(self, account: InstagramAccount, *, force: bool) -> tuple[bool, str]:
        try:
            attempt = token_refresh(
                account=account, trigger=RefreshAttempt.Trigger.COMMAND, force=force
            )
        except RefreshInProgress:
            return True, f"{account.slug}: busy (another refresh of it is running)"
        except instagram.InstagramError as exc:
            # Retryable: recorded by the service; the worker or the next run retries.
            return False, f"{account.slug}: FAILED {type(exc).__name__}: {exc.describe()}"
        if attempt.outcome == Outcome.SUCCESS:
            return True, f"{account.slug}: refreshed. {attempt.message}"
        if attempt.outcome == Outcome.SKIPPED:
            return True, f"{account.slug}: skipped, {attempt.message}"
        failed = attempt.outcome in FAILED
        return (
            not failed,
            f"{account.slug}: FAILED {attempt.get_outcome_display().lower()}: {attempt.message}",
        )
