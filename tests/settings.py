"""Test settings: the real settings module, with test credentials and cheap hashing.

DATABASE_URL / REDIS_URL in the environment select PostgreSQL and Redis (CI sets
both); without them the suite runs on SQLite and the embedded broker/cache."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("INSTAGRAM_APP_ID", "1234567890123456")
os.environ.setdefault("INSTAGRAM_APP_SECRET", "test-app-secret")
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")
# Each test run gets its own var/ (SQLite file, file cache, broker folders).
os.environ.setdefault("TOKENAGENT_VAR_DIR", tempfile.mkdtemp(prefix="tokenagent-test-var-"))

from tokenagent.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if REDIS_URL:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = f"tokenagent-test-{os.getpid()}"  # noqa: F405
    CACHES["ratelimit"]["KEY_PREFIX"] = f"tokenagent-test-ratelimit-{os.getpid()}"  # noqa: F405
ROOT_URLCONF = "tests.urls"
# The suite's requests come "through Heroku's router" when they carry
# X-Forwarded-Proto (tests/tokenagent/test_deploy_settings.py tests when it is trusted).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Tests share one process across many database states: no per-process token memo
# (tests of the memo turn it on themselves).
TOKEN_CACHE_LOCAL_SECONDS = 0
# Nor a per-process copy of pictures (accounts/selectors/served_images.py), for the
# same reason; the tests of the copy turn it on.
FEED_IMAGE_MEMORY_BYTES = 0
# Abuse limits would trip on suites that sign in or post hooks many times from one
# address; tests/security/test_ratelimit.py turns them back on.
RATELIMIT_ENABLE = False
