"""The one settings module: every value comes from the environment (12-factor).

Laptop and Heroku differ only by environment variables; tests override what they
need in ``tests/settings.py``. Importing this module never connects to the database
or Redis (Heroku runs ``collectstatic`` at build time with no services); it only
creates the private var/ directory and, for SQLite, the empty 0600 database file.
The names match ``PRODUCT.md``.
"""

import os
import secrets
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from accounts.snippets import INSTAFEED_CDN_DIR
from accounts.usernames import username_normalise

BASE_DIR = Path(__file__).resolve().parent.parent
# Absolute, so processes started from different directories share one var/.
VAR_DIR = Path(environ.Env().str("TOKENAGENT_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

env = environ.Env()
# A .env file is a convenience for local runs; real environment variables win.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# A blank value (an empty line in .env, an empty field in Heroku's deploy form)
# means "use the default" for every setting, not "set it to nothing".
for _name in [n for n, v in os.environ.items() if v == "" and n.isupper()]:
    del os.environ[_name]

DEBUG = env.bool("DEBUG", default=False)


def _private_dir(path: Path) -> None:
    """Create ``path`` readable by this user only (0700); an existing one of ours with
    wider permissions is tightened. A shared sticky directory (like /tmp) is left as
    it is: the files that matter are made private one by one."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX:
        if stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(0o700)


def _private_file(path: Path) -> None:
    """Create the SQLite file ``path`` empty and 0600 before SQLite would create it
    with the umask's mode, or tighten ours to 0600, with its WAL, shared-memory and
    journal files (SQLite gives those the database file's mode)."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    except OSError:
        return  # no such or no writable directory: opening the database will say so
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if name.exists() and name.stat().st_uid == os.getuid():
            if stat.S_IMODE(name.stat().st_mode) & 0o077:
                name.chmod(0o600)


def _dev_secret_key() -> str:
    """A development key kept in var/ so web, worker and beat share it across restarts.
    Written whole to a private temp file, then linked into place: processes starting
    together never read a half-written key, and all end up with the one that won."""
    path = VAR_DIR / "dev-secret-key"
    _private_dir(VAR_DIR)
    if not path.exists():
        tmp = VAR_DIR / f".dev-secret-key.{os.getpid()}"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first; use its key
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _dev_secret_key()
# Earlier keys still accepted while SECRET_KEY is replaced (README "Encryption keys").
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

# Loopback names by default. On Heroku (DYNO is set on every dyno) also
# '.herokuapp.com': a Button app's name is not known in advance, and the router only
# hands a dyno requests for its own app's domains, so any herokuapp.com Host that
# reaches us is ours. Elsewhere a wildcard over a shared domain would let anyone
# choose the host the agent puts in its snippets. An empty value counts as unset.
_LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[]) or (
    [*_LOOPBACK_HOSTS, ".herokuapp.com"] if env.str("DYNO", default="") else _LOOPBACK_HOSTS
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "csp",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.ratelimit.RateLimitMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tokenagent.urls"
WSGI_APPLICATION = "tokenagent.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.agent",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
# var/ holds the SQLite database (live session keys), the dev secret key and the
# embedded broker's messages: private to this user, the database file 0600.
_private_dir(VAR_DIR)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _sqlite_name = str(DATABASES["default"]["NAME"])
    if _sqlite_name and _sqlite_name != ":memory:" and not _sqlite_name.startswith("file:"):
        _private_file(Path(_sqlite_name))
    # web, worker and beat share one file: WAL lets readers run beside a writer,
    # IMMEDIATE transactions avoid "database is locked" on lock upgrades.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and Django cache, or embedded equivalents -----------------
REDIS_URL = env.str("REDIS_URL", default="")
# Heroku Key-Value Store speaks TLS only, with a self-signed certificate.
REDIS_TLS = REDIS_URL.startswith("rediss://")

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tokenagent",
            # A Redis that hangs (rather than refusing) must not stall the token
            # URLs: after this many seconds a cache read is a miss (served from the DB).
            "OPTIONS": {
                "socket_connect_timeout": env.float("REDIS_CACHE_TIMEOUT", default=1.0),
                "socket_timeout": env.float("REDIS_CACHE_TIMEOUT", default=1.0),
                **({"ssl_cert_reqs": None} if REDIS_TLS else {}),
            },
        }
    }
    # Rate-limit counters (accounts/ratelimit.py) under their own alias and prefix.
    # One Redis has one maxmemory (Heroku: noeviction, so a full one refuses writes
    # and the limits fail open), which a prefix does not divide: what keeps a flood
    # from filling it is that no public request stores a key of its own choosing
    # (an unknown account name stores nothing, accounts/selectors/serving.py).
    CACHES["ratelimit"] = {**CACHES["default"], "KEY_PREFIX": "tokenagent-ratelimit"}
    if REDIS_TLS:
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_NONE}
else:
    # No Redis: Kombu's filesystem transport works across the processes of one machine
    # (or dyno) and survives their restarts. On Heroku a dyno's disk is wiped when it
    # restarts, and the queued messages with it: harmless, since beat's next tick
    # finds again, in the database, every refresh and sync that is due.
    BROKER_DIR = VAR_DIR / "broker"
    for sub in ("queue", "control", "processed"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
    }
if not REDIS_URL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No Redis but PostgreSQL (Heroku's one-dyno formation): the cache lives in the
    # database, shared by every process of every dyno, so a refresh anywhere
    # invalidates what every web process serves (tokenagent/cache.py; the tables come
    # from a migration). Rate-limit counters in a table of their own, culled apart.
    CACHES = {
        "default": {
            "BACKEND": "tokenagent.cache.DatabaseCache",
            "LOCATION": "tokenagent_cache",
            # Bounded by the accounts (a few entries each); culling is only a backstop.
            "OPTIONS": {"MAX_ENTRIES": 50000},
        },
        "ratelimit": {
            "BACKEND": "tokenagent.cache.DatabaseCache",
            "LOCATION": "tokenagent_ratelimit",
            "OPTIONS": {"MAX_ENTRIES": 10000},
        },
    }
elif not REDIS_URL:
    # One machine with SQLite: the file cache is shared by web and worker.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        },
        # Rate-limit counters in a folder of their own: the file cache culls a third
        # of its entries at random once it holds MAX_ENTRIES, so counters sharing the
        # token cache's folder could be culled by anything stored there.
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "ratelimit"),
            "OPTIONS": {"MAX_ENTRIES": 10000},
        },
    }

# Whether the web dyno runs the Celery worker and beat too (scripts/dyno.py reads it
# from the environment; the setup page checks the formation with it).
EMBEDDED_WORKER = env.bool("EMBEDDED_WORKER", default=True)

# --- Celery ---------------------------------------------------------------------
CELERY_TIMEZONE = "UTC"
CELERY_TASK_IGNORE_RESULT = True  # fire-and-forget; nothing fills Redis with results
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task whose process dies is delivered again; refresh tasks are idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180  # well below Redis' one-hour visibility timeout
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 20  # Heroku kills 30 s after SIGTERM
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Two queues. Feed syncs (a listing and dozens of pictures each) go to ``feeds``;
# everything else (token refreshes, beat's tick, alerts) to Celery's default
# ``celery``. A worker consumes both, taking a message from each in turn, and
# prefetches one per process (the multiplier above), so a due refresh never waits
# behind a round of syncs: beat's first tick after a deploy queues every feed at once.
# Both are declared, so a worker started without ``--queues`` consumes both too
# (the Procfile names them anyway). tests/integration/test_queues.py checks it.
CELERY_TASK_DEFAULT_QUEUE = "celery"
FEED_QUEUE = "feeds"
CELERY_TASK_QUEUES = (
    Queue(CELERY_TASK_DEFAULT_QUEUE, routing_key=CELERY_TASK_DEFAULT_QUEUE),
    Queue(FEED_QUEUE, routing_key=FEED_QUEUE),
)
CELERY_TASK_ROUTES = {"accounts.tasks.sync_feed": {"queue": FEED_QUEUE}}
# Celery's Django fixup closes every database connection before and after each task
# unless this is set; then only once per this many tasks (per process). Connections
# are kept like a web thread's instead (tokenagent/celery.py: CONN_MAX_AGE, health
# checks, a failed one closed after its task).
CELERY_DB_REUSE_MAX = 10_000


def _bounded_int(name: str, *, default: int, low: int, high: int, why: str) -> int:
    """An integer setting that must lie in [low, high]; anything else stops startup."""
    try:
        value = env.int(name, default=default)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number ({why}).") from None
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be between {low} and {high} ({why}).")
    return value


# --- The feed (accounts/feed_policy.py decides with these) ----------------------------
# How often each feed is re-read from Instagram (Instagram has no webhook for new
# posts). At least 5 minutes: every sync spends calls of the account's rate budget
# (docs/instagram.md section 8). At most a day: videos are served with Instagram's
# own URL, renewed at each sync, and those expire after a few days.
FEED_SYNC_SECONDS = _bounded_int(
    "FEED_SYNC_SECONDS", default=1800, low=300, high=86400, why="seconds, 300 to a day"
)
# Posts kept and served per account. Every picture is mirrored in three widths:
# about 0.5 MB for a real photo (bench/feed measures the sandbox's), so 50 posts
# (about 58 pictures with their carousel items) take some 30 MB of the database.
FEED_MAX_POSTS = _bounded_int("FEED_MAX_POSTS", default=50, low=1, high=200, why="posts")
# Internal limits of a sync (not environment settings; tests change them).
# A sync's claim; a killed worker's lapses after this. Longer than the sync task's
# hard time limit (accounts/tasks.py), so a live sync never loses it.
FEED_SYNC_LOCK_SECONDS = 900
FEED_IMAGE_MAX_BYTES = 8 * 1024 * 1024  # one picture from the CDN
FEED_IMAGE_TIMEOUT = 20.0  # seconds for one whole picture download
FEED_SYNC_IMAGE_BUDGET_SECONDS = 300  # all downloads of one sync together
FEED_IMAGE_WORKERS = 3  # parallel downloads of one sync
# Pictures decoded and resized at once in each process, over all its syncs: each
# decode holds up to ~50 MB (accounts/feed_mirror.py). A worker with 64 threads
# first-syncing 10 feeds peaked at 635 MB RSS without this bound, 372 MB with 2
# (bench/feed --worker-args '--pool threads --concurrency 64').
FEED_IMAGE_DECODES = _bounded_int(
    "FEED_IMAGE_DECODES", default=2, low=1, high=64, why="decodes at once per process"
)
# A post's picture never changes on Instagram, except a reel's cover: reuse the
# mirrored one, and look again once a day.
FEED_IMAGE_REFETCH_SECONDS = 24 * 3600
# Each web process keeps the pictures it served last, up to this many bytes, so a
# picture costs a dict lookup rather than a database read (accounts/selectors/
# served_images.py; bench/token_endpoints measures both).
FEED_IMAGE_MEMORY_BYTES = 16 * 1024 * 1024
FEED_STALE_ALERT_PERIODS = 4  # alert once the last good sync is this many periods old
FEED_FAILURE_BACKOFF_MAX_SECONDS = 6 * 3600

# How often beat's one entry fires; what is due is decided from the DB. By default
# 15 minutes or a sixth of FEED_SYNC_SECONDS, whichever is shorter (5 minutes with
# the defaults): a feed is read at most a sixth of a period late. With a 15-minute
# tick a 30-minute feed period is two ticks, and any sync that starts more than the
# due check's slack (5%, 90 s) after its tick -- a queue of first syncs downloading
# pictures -- slips a whole tick (45 minutes), as does any period that is not a
# multiple of the tick (20 minutes becomes 30).
REFRESH_TICK_SECONDS = env.int("REFRESH_TICK_SECONDS", default=min(15 * 60, FEED_SYNC_SECONDS // 6))
CELERY_BEAT_SCHEDULE = {
    # Every REFRESH_TICK_SECONDS (5 min by default): record a heartbeat, fan out one
    # refresh task per due token and one sync task per due feed.
    "refresh-due-accounts": {
        "task": "accounts.tasks.refresh_due_accounts",
        "schedule": REFRESH_TICK_SECONDS,
        # A tick still queued when the next one is due is dropped unread: the next
        # one reads what is due from the database anyway. Otherwise a worker kept busy
        # (a dyno's first feed syncs, beside the web server in the one-dyno formation)
        # works through a backlog of stale ticks before the refreshes they queued.
        "options": {"expires": REFRESH_TICK_SECONDS},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The refresh engine (accounts/services/refresh.py, accounts/tasks.py).
# A refresh claims its account for this long: above the HTTP timeouts and the task's
# hard time limit (CELERY_TASK_TIME_LIMIT), so no claim lapses while its task may still
# run, and a killed worker's claim lapses so the next try runs.
REFRESH_LOCK_SECONDS = env.int("REFRESH_LOCK_SECONDS", default=200)
# Refresh when a token expires within this window, whatever its frequency says.
REFRESH_SAFETY_WINDOW_DAYS = env.int("REFRESH_SAFETY_WINDOW_DAYS", default=7)
# Transient failures: exponential backoff with full jitter, base * 2**n seconds, capped.
REFRESH_RETRY_BACKOFF_BASE = env.int("REFRESH_RETRY_BACKOFF_BASE", default=60)
REFRESH_RETRY_BACKOFF_MAX = env.int("REFRESH_RETRY_BACKOFF_MAX", default=900)
REFRESH_MAX_RETRIES = env.int("REFRESH_MAX_RETRIES", default=5)
REFRESH_MALFORMED_MAX_RETRIES = env.int("REFRESH_MALFORMED_MAX_RETRIES", default=3)
# After a failure, beat leaves the account to the task's own retries this long.
REFRESH_FAILURE_COOLDOWN_SECONDS = env.int("REFRESH_FAILURE_COOLDOWN_SECONDS", default=3600)
REFRESH_HISTORY_DAYS = env.int("REFRESH_HISTORY_DAYS", default=90)
ALERT_REPEAT_SECONDS = env.int("ALERT_REPEAT_SECONDS", default=24 * 3600)

# --- Instagram ------------------------------------------------------------------
INSTAGRAM_APP_ID = env.str("INSTAGRAM_APP_ID", default="")
INSTAGRAM_APP_SECRET = env.str("INSTAGRAM_APP_SECRET", default="")
INSTAGRAM_GRAPH_VERSION = env.str("INSTAGRAM_GRAPH_VERSION", default="v21.0")
INSTAGRAM_CONNECT_TIMEOUT = env.float("INSTAGRAM_CONNECT_TIMEOUT", default=5.0)
INSTAGRAM_READ_TIMEOUT = env.float("INSTAGRAM_READ_TIMEOUT", default=20.0)
# Beat's fan-out refreshes this many accounts per task (accounts/services/
# refresh_batch.py), asking Instagram on up to REFRESH_BATCH_THREADS threads at once:
# a few queries per batch instead of a handful per account. 10,000 due accounts took
# 118 s one task each (64 threads) and 31 s in batches (8 threads; bench/refresh_fanout).
# A batch's worst case, every call timing out, must end within the task's soft time limit.
REFRESH_BATCH_SIZE = _bounded_int(
    "REFRESH_BATCH_SIZE", default=32, low=1, high=500, why="accounts per refresh task"
)
REFRESH_BATCH_THREADS = _bounded_int(
    "REFRESH_BATCH_THREADS", default=16, low=1, high=64, why="Instagram calls at once per batch"
)
_BATCH_WORST = -(-REFRESH_BATCH_SIZE // REFRESH_BATCH_THREADS) * (
    INSTAGRAM_CONNECT_TIMEOUT + INSTAGRAM_READ_TIMEOUT
)
if _BATCH_WORST >= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"REFRESH_BATCH_SIZE / REFRESH_BATCH_THREADS rounds of Instagram's timeouts take up "
        f"to {_BATCH_WORST:.0f} s, beyond a task's {CELERY_TASK_SOFT_TIME_LIMIT} s: use more "
        "threads, smaller batches or shorter INSTAGRAM_*_TIMEOUTs."
    )
INSTAGRAM_USER_AGENT = env.str(
    "INSTAGRAM_USER_AGENT",
    default="tokenagent/0.1 (self-hosted Instagram token refresher; Django)",
)
INSTAGRAM_SCOPES = ["instagram_business_basic"]

# The sandbox Instagram is mounted when no real app is configured, and never when
# DEBUG is off (a production configuration cannot talk to a fake Instagram).
SANDBOX_ENABLED = not INSTAGRAM_APP_ID and DEBUG
PORT = env.int("PORT", default=8000)
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default=f"http://127.0.0.1:{PORT}/sandbox")
if SANDBOX_ENABLED:
    INSTAGRAM_APP_ID = "sandbox-app"
    INSTAGRAM_APP_SECRET = INSTAGRAM_APP_SECRET or "sandbox-secret"
    _ig_default = SANDBOX_BASE_URL
    _authorize_default = "/sandbox/oauth/authorize"
else:
    _ig_default = ""
    _authorize_default = "https://www.instagram.com/oauth/authorize"
INSTAGRAM_AUTHORIZE_URL = env.str("INSTAGRAM_AUTHORIZE_URL", default=_authorize_default)
INSTAGRAM_API_URL = env.str("INSTAGRAM_API_URL", default=_ig_default or "https://api.instagram.com")
INSTAGRAM_GRAPH_URL = env.str(
    "INSTAGRAM_GRAPH_URL", default=_ig_default or "https://graph.instagram.com"
)


# --- Owner, serving, refresh ----------------------------------------------------------
def _owner_usernames(values: list[str]) -> list[str]:
    """As Instagram spells them (accounts/usernames.py); a malformed one stops startup."""
    names = []
    for value in filter(str.strip, values):
        try:
            names.append(username_normalise(value))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"OWNER_INSTAGRAM_USERNAMES: {ascii(value.strip())[:40]} is {exc}."
            ) from None
    return names


OWNER_INSTAGRAM_USERNAMES = _owner_usernames(env.list("OWNER_INSTAGRAM_USERNAMES", default=[]))
# The sandbox's first test user (accounts/sandbox/views.py PRESET_USERS), so that
# `make run` on a fresh machine can sign in; never outside the sandbox.
SANDBOX_OWNER = "acme_bakery"
if SANDBOX_ENABLED and not OWNER_INSTAGRAM_USERNAMES:
    OWNER_INSTAGRAM_USERNAMES = [SANDBOX_OWNER]
ALLOWED_DOMAINS = env.str("ALLOWED_DOMAINS", default="")
# The token and feed URLs do their own CORS (accounts/cors.py: ALLOWED_DOMAINS, narrowed
# per account, which the middleware cannot do); django-cors-headers stays off them and,
# with no allowed origins configured, grants nothing elsewhere.
CORS_URLS_REGEX = r"^/(?!(?:token|feed)(?:[./]|$))"
JS_CONSTANT_NAME = env.str("JS_CONSTANT_NAME", default="InstagramToken")
REFRESH_FREQUENCY = env.str("REFRESH_FREQUENCY", default="weekly").strip().lower()
if REFRESH_FREQUENCY not in ("daily", "weekly", "monthly"):
    raise ImproperlyConfigured("REFRESH_FREQUENCY must be daily, weekly or monthly.")
HIDE_HELP_PAGES = env.bool("HIDE_HELP_PAGES", default=False)
STARTING_TOKEN = env.str("STARTING_TOKEN", default="")
WEBHOOK_SECRET = env.str("WEBHOOK_SECRET", default="")
# With it, `Authorization: Bearer <HEALTHZ_TOKEN>` shows /healthz's per-account detail
# (signed-in owners see it anyway); unset, no bearer does.
HEALTHZ_TOKEN = env.str("HEALTHZ_TOKEN", default="")
# Comma-separated Fernet keys, newest first; derived from SECRET_KEY when unset.
TOKEN_ENCRYPTION_KEY = env.str("TOKEN_ENCRYPTION_KEY", default="")
# Upper bound for Cache-Control max-age on token responses, in seconds.
TOKEN_CACHE_MAX_AGE = env.int("TOKEN_CACHE_MAX_AGE", default=3600)
# How long each web process reuses a token entry read from the shared cache (seconds;
# 0 = read the shared cache on every request). Bounds how late other processes see
# a refresh or disconnect; see accounts/token_cache.py and bench/token_endpoints.
TOKEN_CACHE_LOCAL_SECONDS = env.float("TOKEN_CACHE_LOCAL_SECONDS", default=1.0)

# --- Proxy headers --------------------------------------------------------------------
# A proxy in front of the agent terminates TLS and says so in X-Forwarded-Proto, and
# appends the client's address to X-Forwarded-For. Those headers are believed only
# where such a proxy is declared: on Heroku (its router; DYNO is set on every dyno)
# unless TRUST_PROXY_HEADERS says otherwise, elsewhere only with TRUST_PROXY_HEADERS=True.
TRUST_PROXY_HEADERS = env.bool("TRUST_PROXY_HEADERS", default=bool(env.str("DYNO", default="")))

# --- Abuse limits (accounts/ratelimit.py): per client address, in the "ratelimit" cache --
# django-ratelimit rates ("20/m" = 20 a minute, "100/5m"); "off" turns one off.
# Token URLs are never limited.
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_LOGIN = env.str("RATELIMIT_LOGIN", default="20/m")
# Django's admin sign-in takes passwords: a guessing budget of its own.
RATELIMIT_ADMIN_LOGIN = env.str("RATELIMIT_ADMIN_LOGIN", default="10/m")
RATELIMIT_OAUTH_CALLBACK = env.str("RATELIMIT_OAUTH_CALLBACK", default="20/m")
RATELIMIT_HOOK = env.str("RATELIMIT_HOOK", default="30/m")
RATELIMIT_META_CALLBACKS = env.str("RATELIMIT_META_CALLBACKS", default="60/m")
# Trusted proxies appending to X-Forwarded-For: the declared proxy (below), else
# none, where the header is the client's to forge.
RATELIMIT_PROXY_COUNT = env.int("RATELIMIT_PROXY_COUNT", default=1 if TRUST_PROXY_HEADERS else 0)
# A cache that cannot count lets the request through rather than locking everyone out.
RATELIMIT_FAIL_OPEN = True

# --- Alerts ---------------------------------------------------------------------------
ALERT_EMAIL = env.list("ALERT_EMAIL", default=[])
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
# An empty value (a blank field in Heroku's deploy form) counts as unset.
EMAIL_CONFIG = env.email_url_config(env.str("EMAIL_URL", default="") or "consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="tokenagent@localhost")

# --- Auth, sessions, security ------------------------------------------------------
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # the OAuth callback is a top-level GET from Instagram
# X-Forwarded-Proto: https is believed only behind a proxy that sets it (see
# TRUST_PROXY_HEADERS); elsewhere any client could send it and have the agent build
# https URLs (the OAuth redirect URI) for a plain connection.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUST_PROXY_HEADERS else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"


# --- Content-Security-Policy (django-csp) on every page but the token URLs ------------
def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None  # a path on this site ('self')


# The owner's pages load only the agent's own files, except the token preview: it
# runs Instafeed.js from jsDelivr (the version the snippets pin, with its integrity
# hash; see accounts/snippets.py), which calls the Graph API and shows pictures from
# Instagram's CDN. When the agent talks to another Graph server (a sandbox), the
# preview's calls and pictures come from there instead.
_GRAPH = [o for o in {_origin(INSTAGRAM_GRAPH_URL)} - {"https://graph.instagram.com"} if o]
_AUTHORIZE = [o for o in [_origin(INSTAGRAM_AUTHORIZE_URL)] if o]
CONTENT_SECURITY_POLICY = {
    # The token and feed URLs are scripts, data and pictures that sites load
    # cross-site: a policy there would be noise on the hot path. The sandbox (DEBUG
    # only) plays a foreign site, Instagram, with its own inline styles.
    "EXCLUDE_URL_PREFIXES": ["/token", "/feed", "/sandbox/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", INSTAFEED_CDN_DIR],
        "connect-src": ["'self'", "https://graph.instagram.com", *_GRAPH],
        "img-src": [
            "'self'",
            "data:",
            "https://*.cdninstagram.com",
            "https://*.fbcdn.net",
            *_GRAPH,
        ],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        # Forms post here; "connect an account" may redirect on to Instagram's
        # authorize page, which browsers check against form-action too.
        "form-action": ["'self'", *_AUTHORIZE],
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# --- Logging: stdout, one line per event, tokens redacted ---------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "tokenagent.redaction.RedactingFilter"}},
    "formatters": {
        "line": {
            # Heroku's log router splits on newlines: one event per line, tracebacks
            # included, except under DEBUG where people read them.
            "()": "logging.Formatter" if DEBUG else "tokenagent.logformat.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "line",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        # Drops Django's own "console" handler, which would print request errors
        # (URLs with ?code=, tracebacks) to stderr unredacted under DEBUG; records
        # propagate to the root's redacting stdout handler instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "urllib3": {"level": "WARNING"},
    },
}
