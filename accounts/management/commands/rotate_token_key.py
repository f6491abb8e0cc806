"""``python manage.py rotate_token_key``

Re-encrypts every stored token under the newest key of ``TOKEN_ENCRYPTION_KEY``.
To rotate: put a new key first (``NEW,OLD``), restart, run this, then drop OLD.
Tokens no configured key can open are listed and left alone (exit 1).
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.services.connect import tokens_rotate_key


class Command(BaseCommand):
    help = "Re-encrypt all stored tokens under the newest TOKEN_ENCRYPTION_KEY."

    def handle(self, *args, **options) -> None:
        result = tokens_rotate_key()
        self.stdout.write(f"Re-encrypted {result.rotated} token(s) under the newest key.")
        if result.unreadable:
            raise CommandError(
                f"{len(result.unreadable)} token(s) could not be decrypted with any configured "
                f"key and were left as they are: {', '.join(result.unreadable)}."
            )
