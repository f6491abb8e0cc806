"""The cache without Redis on PostgreSQL (tokenagent/cache.py): chosen by the settings
for the one-dyno formation, shared through the database, with an increment that
loses no count when many processes count at once, and serving that survives the
cache failing."""

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from accounts import token_cache
from tests.child_python import child_env, json_result, run_python
from tokenagent.cache import DatabaseCache

PROBE = r"""
import json, sys
import environ
environ.Env.read_env = classmethod(lambda cls, *a, **kw: None)
import tokenagent.settings as s
print(json.dumps({"caches": s.CACHES, "broker": s.CELERY_BROKER_URL}, default=str))
"""
BASE = {"SECRET_KEY": "db-cache-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"}


def settings_with(tmp_path, **environment) -> dict:
    return json_result(run_python(PROBE, env=child_env(tmp_path / "var", **BASE, **environment)))


def test_without_redis_on_postgresql_the_cache_is_in_the_database(tmp_path):
    out = settings_with(tmp_path, DATABASE_URL="postgres://u:p@db.example.com:5432/agent")
    caches_ = out["caches"]
    assert {alias: c["BACKEND"] for alias, c in caches_.items()} == {
        "default": "tokenagent.cache.DatabaseCache",
        "ratelimit": "tokenagent.cache.DatabaseCache",
    }
    # Two tables: culling rate-limit counters never drops a served token, and back.
    assert caches_["default"]["LOCATION"] != caches_["ratelimit"]["LOCATION"]
    # The broker stays on the dyno's disk: beat's next tick repairs its loss.
    assert out["broker"] == "filesystem://"


def test_without_redis_on_sqlite_the_cache_stays_in_files(tmp_path):
    out = settings_with(tmp_path)
    assert out["caches"]["default"]["BACKEND"].endswith("FileBasedCache")


def test_with_redis_the_cache_is_redis_whatever_the_database(tmp_path):
    out = settings_with(
        tmp_path, DATABASE_URL="postgres://u:p@db.example.com/agent", REDIS_URL="redis://r:6379/0"
    )
    assert out["caches"]["default"]["BACKEND"].endswith("RedisCache")


def test_the_migration_creates_the_tables_the_settings_name(tmp_path, db):
    out = settings_with(tmp_path, DATABASE_URL="postgres://u:p@db.example.com:5432/agent")
    tables = connection.introspection.table_names()
    for alias in ("default", "ratelimit"):
        assert out["caches"][alias]["LOCATION"] in tables


@pytest.fixture
def pg_cache(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    cache = DatabaseCache("tokenagent_ratelimit", {"KEY_PREFIX": "test-incr"})
    yield cache
    cache.clear()


@pytest.mark.postgres
def test_increments_from_many_connections_at_once_are_all_counted(pg_cache):
    pg_cache.add("counter", 0, 60)
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def count() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                pg_cache.incr("counter")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    workers = [threading.Thread(target=count) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert errors == []
    assert pg_cache.get("counter") == threads * per_thread


@pytest.mark.postgres
def test_incr_of_a_missing_or_expired_key_is_a_value_error_as_in_django(pg_cache):
    with pytest.raises(ValueError):
        pg_cache.incr("never-set")
    pg_cache.set("gone", 3, -1)  # already expired
    with pytest.raises(ValueError):
        pg_cache.incr("gone")
    pg_cache.set("kept", 3, 60)
    assert pg_cache.incr("kept", 4) == 7
    assert pg_cache.get("kept") == 7


@pytest.fixture
def db_cache_settings(settings, transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.CACHES = {
        "default": {"BACKEND": "tokenagent.cache.DatabaseCache", "LOCATION": "tokenagent_cache"},
        "ratelimit": {
            "BACKEND": "tokenagent.cache.DatabaseCache",
            "LOCATION": "tokenagent_ratelimit",
        },
    }
    token_cache.clear_local()
    yield settings
    DatabaseCache("tokenagent_cache", {}).clear()
    token_cache.clear_local()


@pytest.mark.postgres
def test_served_entries_live_in_the_table_and_an_invalidation_drops_them(db_cache_settings):
    from tests.factories import make_account

    account = make_account(username="acme_bakery", slug="acme")
    assert Client().get("/token/acme.json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tokenagent_cache WHERE cache_key LIKE %s", ["%acme%"])
        assert cursor.fetchone()[0] >= 1
    token_cache.invalidate(account)
    assert token_cache.get(token_cache.key_for("acme")) is None


@pytest.mark.postgres
def test_a_missing_cache_table_is_a_miss_served_from_the_database(db_cache_settings, caplog):
    from tests.factories import make_account

    make_account(username="acme_bakery", slug="acme")
    db_cache_settings.CACHES = {
        "default": {"BACKEND": "tokenagent.cache.DatabaseCache", "LOCATION": "no_such_table"},
    }
    response = Client().get("/token/acme.json")
    assert response.status_code == 200
    assert "token cache read failed" in caplog.text


@pytest.mark.parametrize(
    ("redis_url", "embedded", "level"),
    [
        ("redis://r:6379/0", True, "ok"),
        ("redis://r:6379/0", False, "ok"),
        ("", True, "ok"),  # one dyno: the cache in PostgreSQL, the queue on its disk
        ("", False, "warning"),  # worker dynos cannot read the web dyno's disk
    ],
)
def test_the_setup_page_judges_the_formation(settings, db, redis_url, embedded, level):
    from accounts.selectors.dashboard import setup_checklist

    if connection.vendor != "postgresql" and not redis_url and embedded:
        level = "warning"  # SQLite without Redis: one machine only
    settings.REDIS_URL, settings.EMBEDDED_WORKER, settings.DEBUG = redis_url, embedded, False
    (item,) = [i for i in setup_checklist() if i.key == "redis"]
    assert item.level == level, item
