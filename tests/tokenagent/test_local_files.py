"""Local files hold secrets: var/ (the SQLite database with live session keys, the
dev secret key, the embedded broker's messages) is private to the agent's user.
Each case imports the settings in a fresh interpreter with a permissive umask, the
way a shell on a shared machine would start the agent."""

import sqlite3
import stat
from pathlib import Path

import pytest

from tests.child_python import NO_DOTENV, child_env, json_result, run_python

SECRET = "local-files-test-secret-key-0123456789abcdefghijklmnop"

CHILD = r"""
import json, os, stat, django
django.setup()
from django.conf import settings
from django.db import connection

with connection.cursor() as cursor:  # the first connection creates the file
    cursor.execute("CREATE TABLE IF NOT EXISTS probe (x integer)")
    cursor.execute("INSERT INTO probe VALUES (1)")

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else None

db = str(settings.DATABASES["default"]["NAME"])
print(json.dumps({
    "var": mode(settings.VAR_DIR),
    "db": mode(db),
    "wal": mode(db + "-wal"),
    "shm": mode(db + "-shm"),
}))
"""
PROBE = "import os\nos.umask(0o022)\n" + NO_DOTENV + CHILD


def modes(var_dir: Path, **environment: str) -> dict:
    env = child_env(var_dir, SECRET_KEY=SECRET, **environment)
    return json_result(run_python(PROBE, env=env))


def test_a_new_var_dir_is_private_and_the_sqlite_files_are_owner_only(tmp_path):
    out = modes(tmp_path / "var")
    assert out["var"] == 0o700
    assert out["db"] == 0o600
    # SQLite gives its WAL and shared-memory files the database file's mode.
    assert out["wal"] == 0o600 and out["shm"] == 0o600


def test_an_existing_wide_var_dir_and_database_are_tightened(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    var.chmod(0o755)
    db = var / "db.sqlite3"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    out = modes(var)
    assert (out["var"], out["db"]) == (0o700, 0o600)


def test_a_shared_sticky_directory_is_left_alone_but_the_database_is_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: other users' files live here too
    out = modes(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert out["db"] == 0o600


@pytest.mark.parametrize("name", ["db.sqlite3", "elsewhere/agent.db"])
def test_a_sqlite_database_url_outside_var_is_owner_only_too(tmp_path, name):
    path = tmp_path / "data" / name
    path.parent.mkdir(parents=True)
    out = modes(tmp_path / "var", DATABASE_URL=f"sqlite:///{path}")
    assert out["db"] == 0o600
