"""``python manage.py sync_feeds [ACCOUNT ...]``

Re-reads feeds from Instagram now, due or not, in this process without a worker
(cron, Heroku Scheduler, a first look after setting the agent up): the named
accounts, or every active one when none is named. One line per account with what
happened, the posts and pictures, or Instagram's error (never a token); a failed
sync keeps the last snapshot. An unknown name is refused before anything is read
(exit status 2); otherwise the exit status is 1 when any sync failed (a feed
another sync is reading, or a disconnected account, is not a failure).
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import InstagramAccount
from accounts.services.accounts import shown_name
from accounts.services.feed import FeedSyncResult, Outcome, feed_sync
from tokenagent.redaction import redact


def result_line(result: FeedSyncResult) -> str:
    """What one sync did, after ``<slug>: ``."""
    if result.outcome == Outcome.SYNCED:
        line = (
            f"synced {result.posts} posts; pictures: {result.images_fetched} fetched, "
            f"{result.images_reused} reused, {result.images_missing} missing, "
            f"{result.images_deleted} deleted"
        )
        if result.message:  # why pictures are missing
            line += f" ({result.message[:300]})"
        return redact(line)
    if result.outcome == Outcome.FAILED:
        kind = type(result.error).__name__ if result.error else "error"
        return redact(f"FAILED {kind}: {result.message}; the last snapshot stays")
    if result.outcome == Outcome.BUSY:
        return f"busy ({result.message})"
    return f"skipped, {result.message}"


class Command(BaseCommand):
    help = "Read feeds from Instagram now, in this process (named accounts, or every active one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account slugs")

    def handle(self, *args, **options) -> None:
        names: list[str] = list(dict.fromkeys(options["accounts"]))
        if names:
            found = {a.slug: a for a in InstagramAccount.objects.filter(slug__in=names)}
            missing = [n for n in names if n not in found]
            if missing:
                listed = ", ".join(repr(shown_name(n)) for n in missing)
                raise CommandError(
                    f"no such account: {listed}; nothing was synced "
                    "(the dashboard lists the accounts' names)",
                    returncode=2,
                )
            accounts = [found[n] for n in names]
        else:
            accounts = list(
                InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE).order_by(
                    "slug"
                )
            )
        failures = 0
        for account in accounts:
            result = feed_sync(account=account)
            line = f"{account.slug}: {result_line(result)}"
            if result.ok:
                self.stdout.write(line)
            else:
                failures += 1
                self.stdout.write(self.style.ERROR(line))
        if failures:
            raise CommandError(f"{failures} feed sync(s) failed", returncode=1)
