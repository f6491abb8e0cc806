"""The tables of the database cache (tokenagent/cache.py), created whatever CACHES says
today, so that moving between formations (README "Deploy to Heroku": Redis removed
or added) never needs a step of its own: the tables are there before the cache is."""

from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

TABLES = ("tokenagent_cache", "tokenagent_ratelimit")


def create(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    for table in TABLES:
        command.create_table(schema_editor.connection.alias, table, dry_run=False)


def drop(apps, schema_editor):
    quote = schema_editor.connection.ops.quote_name
    for table in TABLES:
        schema_editor.execute(f"DROP TABLE IF EXISTS {quote(table)}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_account_feed_only")]

    operations = [migrations.RunPython(create, drop)]
