"""tokenagent/settings.py reads the environment at import, so each case imports it
in a fresh interpreter with a controlled environment (nothing inherited from the
test run) and reads the values back as JSON."""

import json
import os
import ssl
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.child_python import child_env, json_result, run_python

BASE_DIR = Path(__file__).resolve().parents[2]

# Imported in the child. A developer's .env must not leak into these cases, so the
# settings module's .env reading is switched off there.
PROBE = r"""
import json, sys
import environ
environ.Env.read_env = classmethod(lambda cls, *a, **kw: None)
try:
    import tokenagent.settings as s
except Exception as exc:
    print(json.dumps({"__error__": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
out = {name: getattr(s, name, "<unset>") for name in sys.argv[1:]}
if "CELERY_APP" in sys.argv[1:]:
    from tokenagent.celery import app
    conn = app.connection_for_write()
    out["CELERY_APP"] = {
        "transport": conn.transport_cls,
        "ssl": conn.ssl,
        "transport_options": conn.transport_options,
    }
print(json.dumps(out, default=str))
"""


def load(tmp_path, *names, cwd=None, var_dir=None, **environment):
    """Import tokenagent.settings with exactly ``environment`` (plus PATH and the var
    dir) and return the named settings, or {"__error__": ...} if the import raised."""
    env = child_env(var_dir if var_dir is not None else tmp_path / "var", **environment)
    return json_result(run_python(PROBE, *names, env=env, cwd=cwd or BASE_DIR))


PROD = {"SECRET_KEY": "a-real-production-secret-key-0123456789-abcdefghijklmnop"}


# --- SECRET_KEY --------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [None, "0", "False", "off"])
def test_missing_secret_key_with_debug_off_stops_startup(tmp_path, debug):
    environment = {} if debug is None else {"DEBUG": debug}
    out = load(tmp_path, "SECRET_KEY", **environment)
    assert out["__error__"] == "ImproperlyConfigured"
    assert "SECRET_KEY must be set" in out["message"]


def test_debug_without_secret_key_persists_one_key_that_every_process_shares(tmp_path):
    first = load(tmp_path, "SECRET_KEY", DEBUG="1")["SECRET_KEY"]
    second = load(tmp_path, "SECRET_KEY", DEBUG="1")["SECRET_KEY"]
    assert first == second and len(first) >= 50
    key_file = tmp_path / "var" / "dev-secret-key"
    assert key_file.read_text().strip() == first
    # Only the owner can read it.
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0
    # Another var dir is another installation: another key.
    other = load(tmp_path, "SECRET_KEY", DEBUG="1", var_dir=tmp_path / "other")["SECRET_KEY"]
    assert other != first


def test_web_worker_and_beat_starting_together_agree_on_the_dev_key(tmp_path):
    # `make run` starts three processes at once on a fresh var dir.
    with ThreadPoolExecutor(max_workers=6) as pool:
        keys = list(pool.map(lambda _: load(tmp_path, "SECRET_KEY", DEBUG="1"), range(6)))
    assert len({k["SECRET_KEY"] for k in keys}) == 1
    assert all(k["SECRET_KEY"] for k in keys)


def test_an_explicit_secret_key_wins_and_writes_no_file(tmp_path):
    out = load(tmp_path, "SECRET_KEY", "DEBUG", DEBUG="1", **PROD)
    assert out == {"SECRET_KEY": PROD["SECRET_KEY"], "DEBUG": True}
    assert not (tmp_path / "var" / "dev-secret-key").exists()


# --- Broker and cache ----------------------------------------------------------------------


def test_without_redis_the_broker_is_filesystem_in_absolute_existing_folders(tmp_path):
    out = load(tmp_path, "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "CACHES", **PROD)
    assert out["CELERY_BROKER_URL"] == "filesystem://"
    options = out["CELERY_BROKER_TRANSPORT_OPTIONS"]
    # Producer and consumer must share one folder, or nothing is ever delivered.
    assert options["data_folder_in"] == options["data_folder_out"]
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        folder = Path(options[key])
        assert folder.is_absolute() and folder.is_dir(), key
        assert folder.is_relative_to(tmp_path / "var")
    cache = out["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert Path(cache["LOCATION"]).is_absolute()
    assert Path(cache["LOCATION"]).is_relative_to(tmp_path / "var")


def test_a_relative_var_dir_still_gives_absolute_paths(tmp_path):
    # web, worker and beat may start from different directories.
    out = load(
        tmp_path,
        "CELERY_BROKER_TRANSPORT_OPTIONS",
        "CACHES",
        "DATABASES",
        cwd=tmp_path,
        var_dir="relative-var",
        **PROD,
    )
    assert Path(out["CELERY_BROKER_TRANSPORT_OPTIONS"]["data_folder_in"]) == (
        tmp_path / "relative-var" / "broker" / "queue"
    )
    assert Path(out["CACHES"]["default"]["LOCATION"]).is_absolute()
    assert Path(out["DATABASES"]["default"]["NAME"]) == tmp_path / "relative-var" / "db.sqlite3"


def test_redis_url_makes_redis_the_broker_and_the_cache(tmp_path):
    url = "redis://:pw@redis.example.com:6379/0"
    out = load(
        tmp_path,
        "CELERY_BROKER_URL",
        "CACHES",
        "CELERY_BROKER_USE_SSL",
        "CELERY_APP",
        REDIS_URL=url,
        **PROD,
    )
    assert out["CELERY_BROKER_URL"] == url
    assert out["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert out["CACHES"]["default"]["LOCATION"] == url
    # Short socket timeouts: a hanging Redis makes cache reads misses, not stalls.
    assert out["CACHES"]["default"]["OPTIONS"] == {
        "socket_connect_timeout": 1.0,
        "socket_timeout": 1.0,
    }
    assert out["CELERY_BROKER_USE_SSL"] == "<unset>"
    assert out["CELERY_APP"]["transport"] == "redis"
    assert not out["CELERY_APP"]["ssl"]
    assert not (tmp_path / "var" / "broker").exists()


def test_rediss_url_turns_on_tls_without_certificate_checks(tmp_path):
    # Heroku Key-Value Store: TLS with a self-signed certificate.
    url = "rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:12345"
    out = load(tmp_path, "CELERY_BROKER_USE_SSL", "CACHES", "CELERY_APP", REDIS_URL=url, **PROD)
    assert out["CELERY_BROKER_USE_SSL"] == {"ssl_cert_reqs": int(ssl.CERT_NONE)}
    assert out["CACHES"]["default"]["OPTIONS"]["ssl_cert_reqs"] is None
    assert out["CELERY_APP"]["ssl"] == {"ssl_cert_reqs": int(ssl.CERT_NONE)}


# --- Database ---------------------------------------------------------------------------


def test_database_url_postgres_uses_the_postgresql_engine_with_health_checks(tmp_path):
    out = load(
        tmp_path,
        "DATABASES",
        DATABASE_URL="postgres://user:pw@db.example.com:5432/tokenagent",
        **PROD,
    )
    db = out["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["HOST"], db["PORT"], db["USER"]) == (
        "tokenagent",
        "db.example.com",
        5432,
        "user",
    )
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["CONN_MAX_AGE"] == 600


def test_default_database_is_sqlite_in_the_var_dir(tmp_path):
    out = load(tmp_path, "DATABASES", **PROD)
    db = out["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(db["NAME"]) == tmp_path / "var" / "db.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


# --- Instagram and the sandbox -------------------------------------------------------------

INSTAGRAM = (
    "INSTAGRAM_AUTHORIZE_URL",
    "INSTAGRAM_API_URL",
    "INSTAGRAM_GRAPH_URL",
    "SANDBOX_ENABLED",
    "INSTAGRAM_APP_ID",
)
REAL_HOSTS = {
    "INSTAGRAM_AUTHORIZE_URL": "https://www.instagram.com/oauth/authorize",
    "INSTAGRAM_API_URL": "https://api.instagram.com",
    "INSTAGRAM_GRAPH_URL": "https://graph.instagram.com",
}


def test_a_configured_app_talks_to_the_real_instagram_hosts(tmp_path):
    out = load(tmp_path, *INSTAGRAM, INSTAGRAM_APP_ID="1234567890123456", DEBUG="1")
    assert {k: out[k] for k in REAL_HOSTS} == REAL_HOSTS
    assert out["SANDBOX_ENABLED"] is False
    assert out["INSTAGRAM_APP_ID"] == "1234567890123456"


def test_debug_without_an_app_id_uses_the_sandbox(tmp_path):
    out = load(tmp_path, *INSTAGRAM, "INSTAGRAM_APP_SECRET", DEBUG="1", PORT="9000")
    assert out["SANDBOX_ENABLED"] is True
    assert out["INSTAGRAM_API_URL"] == "http://127.0.0.1:9000/sandbox"
    assert out["INSTAGRAM_GRAPH_URL"] == "http://127.0.0.1:9000/sandbox"
    assert out["INSTAGRAM_AUTHORIZE_URL"] == "/sandbox/oauth/authorize"
    assert out["INSTAGRAM_APP_ID"] and out["INSTAGRAM_APP_SECRET"]


@pytest.mark.parametrize("debug", [None, "0", "false", "no"])
@pytest.mark.parametrize("app_id", ["", "1234567890123456"])
def test_the_sandbox_is_never_on_with_debug_off(tmp_path, debug, app_id):
    environment = {"INSTAGRAM_APP_ID": app_id, **PROD}
    if debug is not None:
        environment["DEBUG"] = debug
    out = load(tmp_path, *INSTAGRAM, **environment)
    assert out["SANDBOX_ENABLED"] is False
    assert {k: out[k] for k in REAL_HOSTS} == REAL_HOSTS
    assert out["INSTAGRAM_APP_ID"] == app_id


def test_instagram_base_urls_can_point_anywhere(tmp_path):
    out = load(
        tmp_path,
        *INSTAGRAM,
        INSTAGRAM_APP_ID="1",
        INSTAGRAM_AUTHORIZE_URL="https://ig.example.com/oauth/authorize",
        INSTAGRAM_API_URL="https://ig.example.com",
        INSTAGRAM_GRAPH_URL="https://graph.ig.example.com",
        **PROD,
    )
    assert out["INSTAGRAM_AUTHORIZE_URL"] == "https://ig.example.com/oauth/authorize"
    assert out["INSTAGRAM_API_URL"] == "https://ig.example.com"
    assert out["INSTAGRAM_GRAPH_URL"] == "https://graph.ig.example.com"


# --- Owner, refresh frequency -----------------------------------------------------------------


def test_owner_usernames_are_lower_case_without_at_signs_or_spaces(tmp_path):
    out = load(
        tmp_path,
        "OWNER_INSTAGRAM_USERNAMES",
        OWNER_INSTAGRAM_USERNAMES="Acme_Bakery, @Other.Shop ,@THIRD,,",
        **PROD,
    )
    assert out["OWNER_INSTAGRAM_USERNAMES"] == ["acme_bakery", "other.shop", "third"]


@pytest.mark.parametrize(
    "value",
    ["\u212aate_shop", "acme bakery", "acme!", "@", "caf\u00e9", "x" * 31, "acme,\u0130nstagram"],
)
def test_a_malformed_owner_username_stops_startup(tmp_path, value):
    """Compared as Instagram spells usernames (a-z, 0-9, '.', '_'): Python's
    lower() would turn the Kelvin sign into 'k' and admit 'kate_shop'."""
    out = load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", OWNER_INSTAGRAM_USERNAMES=value, **PROD)
    assert out.get("__error__") == "ImproperlyConfigured", out
    assert "OWNER_INSTAGRAM_USERNAMES" in out["message"]


def test_no_owner_usernames_means_nobody_by_name(tmp_path):
    assert load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", **PROD) == {"OWNER_INSTAGRAM_USERNAMES": []}


@pytest.mark.parametrize("value", ["daily", "weekly", "monthly"])
def test_refresh_frequency_accepts_the_token_agent_values(tmp_path, value):
    out = load(tmp_path, "REFRESH_FREQUENCY", REFRESH_FREQUENCY=value, **PROD)
    assert out["REFRESH_FREQUENCY"] == value


def test_refresh_frequency_defaults_to_weekly_and_tolerates_case(tmp_path):
    assert load(tmp_path, "REFRESH_FREQUENCY", **PROD)["REFRESH_FREQUENCY"] == "weekly"
    out = load(tmp_path, "REFRESH_FREQUENCY", REFRESH_FREQUENCY=" Daily ", **PROD)
    assert out["REFRESH_FREQUENCY"] == "daily"


@pytest.mark.parametrize("value", ["fortnightly", "hourly", "7"])
def test_an_invalid_refresh_frequency_stops_startup(tmp_path, value):
    out = load(tmp_path, "REFRESH_FREQUENCY", REFRESH_FREQUENCY=value, **PROD)
    assert out["__error__"] == "ImproperlyConfigured"
    assert "REFRESH_FREQUENCY must be daily, weekly or monthly" in out["message"]


# --- Production defaults ---------------------------------------------------------------------


def test_debug_off_defaults_are_production_safe(tmp_path):
    out = load(
        tmp_path,
        "DEBUG",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        **PROD,
    )
    assert out == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
    }


def test_blank_values_in_env_file_mean_defaults(tmp_path):
    """`cp .env.example .env` must leave a working sandbox setup: blank lines are unset."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTAGRAM_", "DATABASE"))}
    env.pop("REDIS_URL", None)
    env.update(
        TOKENAGENT_VAR_DIR=str(tmp_path),
        DEBUG="1",
        INSTAGRAM_APP_ID="",
        INSTAGRAM_API_URL="",
        DATABASE_URL="",
        REDIS_URL="",
        ALLOWED_HOSTS="",
    )
    code = (
        "import json; from tokenagent import settings as s; print(json.dumps(["
        "s.SANDBOX_ENABLED, s.INSTAGRAM_API_URL, s.DATABASES['default']['ENGINE'], "
        "s.CELERY_BROKER_URL, s.ALLOWED_HOSTS]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    sandbox, api_url, engine, broker, hosts = json.loads(out.stdout.strip().splitlines()[-1])
    assert sandbox is True
    assert api_url.endswith("/sandbox")
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert "127.0.0.1" in hosts


# --- The feed -------------------------------------------------------------------------------


def test_feed_settings_default_to_the_contract_and_the_tick_follows_the_feed(tmp_path):
    defaults = ("FEED_SYNC_SECONDS", "FEED_MAX_POSTS", "REFRESH_TICK_SECONDS", "FEED_IMAGE_DECODES")
    out = load(tmp_path, *defaults, **PROD)
    assert out == {
        "FEED_SYNC_SECONDS": 1800,
        "FEED_MAX_POSTS": 50,
        "REFRESH_TICK_SECONDS": 300,
        "FEED_IMAGE_DECODES": 2,
    }
    # A longer feed period leaves the token tick at its 15 minutes; a shorter one
    # makes beat fire more often, a sixth of the period.
    names = ("FEED_SYNC_SECONDS", "REFRESH_TICK_SECONDS", "CELERY_BEAT_SCHEDULE")
    hourly = load(tmp_path, *names, FEED_SYNC_SECONDS="86400", **PROD)
    assert hourly["REFRESH_TICK_SECONDS"] == 900
    fast = load(tmp_path, *names, FEED_SYNC_SECONDS="600", FEED_MAX_POSTS="200", **PROD)
    assert fast["REFRESH_TICK_SECONDS"] == 100
    assert fast["CELERY_BEAT_SCHEDULE"]["refresh-due-accounts"]["schedule"] == 100
    # An explicit tick wins.
    own = load(tmp_path, "REFRESH_TICK_SECONDS", REFRESH_TICK_SECONDS="60", **PROD)
    assert own["REFRESH_TICK_SECONDS"] == 60


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FEED_SYNC_SECONDS", "0", "between 300 and 86400"),
        ("FEED_SYNC_SECONDS", "299", "between 300 and 86400"),
        ("FEED_SYNC_SECONDS", "86401", "between 300 and 86400"),
        ("FEED_SYNC_SECONDS", "-1800", "between 300 and 86400"),
        ("FEED_SYNC_SECONDS", "30 minutes", "whole number"),
        ("FEED_SYNC_SECONDS", "1800.5", "whole number"),
        ("FEED_MAX_POSTS", "0", "between 1 and 200"),
        ("FEED_MAX_POSTS", "201", "between 1 and 200"),
        ("FEED_MAX_POSTS", "fifty", "whole number"),
        ("FEED_IMAGE_DECODES", "0", "between 1 and 64"),
        ("FEED_IMAGE_DECODES", "two", "whole number"),
    ],
)
def test_a_feed_setting_out_of_bounds_stops_startup(tmp_path, name, value, says):
    out = load(tmp_path, name, **{name: value}, **PROD)
    assert out["__error__"] == "ImproperlyConfigured"
    assert name in out["message"] and says in out["message"]


def test_refresh_batches_default_to_32_accounts_on_16_threads(tmp_path):
    out = load(tmp_path, "REFRESH_BATCH_SIZE", "REFRESH_BATCH_THREADS", **PROD)
    assert out == {"REFRESH_BATCH_SIZE": 32, "REFRESH_BATCH_THREADS": 16}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REFRESH_BATCH_SIZE": "0"}, "REFRESH_BATCH_SIZE must be between 1 and 500"),
        ({"REFRESH_BATCH_SIZE": "lots"}, "REFRESH_BATCH_SIZE must be a whole number"),
        ({"REFRESH_BATCH_THREADS": "65"}, "REFRESH_BATCH_THREADS must be between 1 and 64"),
        # Every call timing out (5 s + 20 s) five rounds in a row outlasts the task.
        (
            {"REFRESH_BATCH_SIZE": "80", "REFRESH_BATCH_THREADS": "16"},
            "take up to 125 s, beyond a task's 120 s",
        ),
        (
            {"REFRESH_BATCH_SIZE": "32", "INSTAGRAM_READ_TIMEOUT": "60"},
            "take up to 130 s",
        ),
    ],
)
def test_a_refresh_batch_that_could_outlast_its_task_stops_startup(tmp_path, env, says):
    out = load(tmp_path, "REFRESH_BATCH_SIZE", **env, **PROD)
    assert out["__error__"] == "ImproperlyConfigured"
    assert says in out["message"]
