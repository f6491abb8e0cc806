"""``python manage.py import_instatokend config.json``

Imports every account of an instatokend ``config.json``
(``{"port": ..., "refresh_freq": ..., "<account>": {"token": ...}, ...}``), each
under its account name, so ``/token/<account>`` keeps its name. All or nothing:
the file's shape, every name and every token (against ``/me``) are checked
before anything is stored; any problem exits 1 and stores nothing.
``refresh_freq`` (daily/weekly/monthly) becomes the accounts' own frequency;
``port`` is ignored.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services.accounts import SlugError
from accounts.services.imports import (
    ImportConfigError,
    TokenInvalid,
    accounts_import_instatokend,
    instatokend_config_parse,
)
from tokenagent.redaction import redact


class Command(BaseCommand):
    help = "Import the accounts of an instatokend config.json (all validated first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("config", metavar="CONFIG_JSON", help="path to instatokend's file")

    def _say(self, line: str) -> None:
        # Account names come from files and arguments: never echo a token-like one.
        self.stdout.write(redact(line))

    def handle(self, *args, **options) -> None:
        path = Path(options["config"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc.__class__.__name__}") from None
        try:
            config = instatokend_config_parse(text=text)
            for note in config.notes:
                self._say(f"note: {note}")
            results = accounts_import_instatokend(config=config)
        except (ImportConfigError, SlugError, TokenInvalid) as exc:
            raise CommandError(f"{exc} Nothing was stored.") from None
        for r in results:
            self._say(
                f"{'imported' if r.created else 'updated'} {r.account.slug} "
                f"(@{r.account.username}): {r.note}"
            )
        self._say(f"{len(results)} account(s) imported.")
