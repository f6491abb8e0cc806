"""``python manage.py rotate_token_key``

Re-encrypts every stored token under the newest key: the first of
``TOKEN_ENCRYPTION_KEY``, else the one derived from ``SECRET_KEY`` (keys derived from
``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` still decrypt). To rotate: put a new key
first (``NEW,OLD``), restart, run this, then drop OLD; README "Encryption keys" also
covers setting a first ``TOKEN_ENCRYPTION_KEY`` and replacing a leaked ``SECRET_KEY``.
Tokens no configured key can open are listed and left alone (exit 1).
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.services.tokens import tokens_rotate_key


class Command(BaseCommand):
    help = "Re-encrypt all stored tokens under the newest encryption key."

    def handle(self, *args, **options) -> None:
        result = tokens_rotate_key()
        self.stdout.write(f"Re-encrypted {result.rotated} token(s) under the newest key.")
        if result.unreadable:
            raise CommandError(
                f"{len(result.unreadable)} token(s) could not be decrypted with any configured "
                f"key and were left as they are: {', '.join(result.unreadable)}."
            )
