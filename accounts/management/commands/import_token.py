"""``python manage.py import_token SLUG TOKEN [--default]``

Imports an existing long-lived Instagram token under the name SLUG. The token is
checked with Instagram (``/me``) before anything is stored; an account already
connected is updated in place (and renamed to SLUG when that name is free).
Pass ``-`` as TOKEN to read it from standard input, which keeps it out of the
shell history and the process list. Exits 1 with a clear error, storing nothing,
when the token or the name is refused.
"""

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services.accounts import SlugError, account_set_default
from accounts.services.imports import TokenInvalid, account_import_token
from tokenagent.redaction import redact


class Command(BaseCommand):
    help = "Import an existing long-lived Instagram token as account SLUG (validated first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="SLUG", help="the name to serve it under")
        parser.add_argument("token", metavar="TOKEN", help="the token, or - to read stdin")
        parser.add_argument(
            "--default", action="store_true", help="serve it at /token.json, /token.js, /token"
        )

    def _say(self, line: str) -> None:
        # Account names come from files and arguments: never echo a token-like one.
        self.stdout.write(redact(line))

    def handle(self, *args, **options) -> None:
        given = options["token"]
        value = sys.stdin.readline() if given == "-" else given
        try:
            result = account_import_token(access_token=value, slug=options["slug"])
        except (TokenInvalid, SlugError) as exc:
            raise CommandError(f"{exc} Nothing was stored.") from None
        account = result.account
        if options["default"]:
            account_set_default(account=account)
        self._say(
            f"{'imported' if result.created else 'updated'} {account.slug} "
            f"(@{account.username}): {result.note}" + (" [default]" if account.is_default else "")
        )
