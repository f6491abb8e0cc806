"""``python manage.py import_starting_token [--strict]``

Token Agent's ``STARTING_TOKEN``: imported once as the default account, checked
with Instagram (``/me``) first. Run by ``make run`` and by the Procfile's release
phase, so it is idempotent: nothing happens when ``STARTING_TOKEN`` is unset,
already stored, or its account is already connected with a live token.

A bad ``STARTING_TOKEN`` prints an error line (on stderr) and **exits 0**, so it
never blocks a deploy or the migrations before it; the agent then simply has
no account from it. ``--strict`` exits 1 instead (for CI or a manual check).
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services.accounts import SlugError
from accounts.services.imports import TokenInvalid, starting_token_import
from tokenagent.redaction import redact


class Command(BaseCommand):
    help = "Import STARTING_TOKEN once (Token Agent compatibility); no-op when unset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--strict", action="store_true", help="exit 1 when STARTING_TOKEN is refused"
        )

    def _say(self, line: str) -> None:
        # Account names come from files and arguments: never echo a token-like one.
        self.stdout.write(redact(line))

    def _warn(self, line: str) -> None:
        self.stderr.write(redact(line))

    def handle(self, *args, **options) -> None:
        if not settings.STARTING_TOKEN.strip():
            self._say("STARTING_TOKEN is not set; nothing to import.")
            return
        try:
            result = starting_token_import(access_token=settings.STARTING_TOKEN)
        except (TokenInvalid, SlugError) as exc:
            message = (
                f"STARTING_TOKEN was not imported: {exc} Nothing was stored. Fix or remove "
                "STARTING_TOKEN, or sign in with Instagram instead."
            )
            if options["strict"]:
                raise CommandError(message) from None
            self._warn(f"ERROR: {message}")
            return
        if result is None:
            self._say("STARTING_TOKEN is already imported; nothing to do.")
            return
        self._say(
            f"STARTING_TOKEN imported as {result.account.slug} (@{result.account.username}): "
            f"{result.note}"
        )
