"""The Django cache in the database, for an install without Redis whose database is
PostgreSQL: the one-dyno Heroku formation (README "Deploy to Heroku").

Every process of every dyno reads and writes the same two tables (created by the
migration ``accounts/0005_cache_tables``), so an invalidation made by a refresh in one
process is seen by every other, on this dyno or another; each web process's short
copy of a served entry (``accounts/token_cache.py``) still spares most reads.

This is Django's ``DatabaseCache`` with one change: ``incr`` is atomic. Django's reads
the value and writes it back in two statements, so counters incremented at the same
time by several processes lose counts; here the row stays locked (``SELECT ... FOR
UPDATE``) from the read to the write, so the abuse limits (``accounts/ratelimit.py``)
count every request however many processes count at once.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends import db
from django.db import connections, models, router, transaction
from django.utils import timezone


class DatabaseCache(db.DatabaseCache):
    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        quote = connection.ops.quote_name
        table = quote(self._table)  # type: ignore[attr-defined]  # set by BaseDatabaseCache
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        # Read back as Django's DatabaseCache reads it (aware or naive per backend).
        field: Any = models.DateTimeField()
        expires = models.Expression(output_field=field)
        converters = connection.ops.get_db_converters(expires) + field.get_db_converters(connection)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(
                # Quoted names, the key bound.
                f"SELECT {quote('value')}, {quote('expires')} FROM {table} "  # noqa: S608
                f"WHERE {quote('cache_key')} = %s{lock}",
                [key],
            )
            row = cursor.fetchone()
            if row is not None:
                value, expiry = row
                for converter in converters:
                    expiry = converter(expiry, expires, connection)
            if row is None or expiry < timezone.now():
                raise ValueError(f"Key '{key}' not found")
            # What this cache stored itself, as Django's DatabaseCache reads it.
            new = pickle.loads(base64.b64decode(value.encode())) + delta  # noqa: S301
            stored = base64.b64encode(pickle.dumps(new, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote('value')} = %s "  # noqa: S608 (as above)
                f"WHERE {quote('cache_key')} = %s",
                [stored, key],
            )
        return new
