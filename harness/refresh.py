"""Real processes for the refresh-engine integration tests and the benchmark:
a Celery worker with embedded beat, the web process (tokenagent/web.py), and a tiny HTTP
receiver standing in for the owner's alert webhook. The process plumbing (free
ports, ``wait_for``, process groups, the private redis-server) is in
harness/processes.py.

The worker and web processes run the production settings module
(``tokenagent.settings``) against the test database, configured only through
environment variables, exactly as on Heroku.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.processes import Process


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (the test database)."""
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class AlertReceiver:
    """Counts the JSON POSTs the agent sends to ALERT_WEBHOOK_URL."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    receiver.posts.append(json.loads(body))
                except ValueError:
                    receiver.posts.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AgentProcess(Process):
    """One agent process (worker or web) in its own process group, so a SIGKILL
    takes down the main process and every child at once, as a dyno crash would.
    Shorter grace periods than a dyno's: these tests stop processes often."""

    stop_wait = 15
    kill_wait = 10


def agent_env(
    *,
    database_url: str,
    redis_url: str,
    instagram_url: str,
    var_dir: Path,
    secret_key: str,
    token_encryption_key: str,
    **extra: object,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "tokenagent.settings",
        "SECRET_KEY": secret_key,
        "TOKEN_ENCRYPTION_KEY": token_encryption_key,
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": "0",
        "REDIS_URL": redis_url,
        "INSTAGRAM_APP_ID": "1234567890123456",
        "INSTAGRAM_APP_SECRET": "test-app-secret",
        "INSTAGRAM_API_URL": instagram_url,
        "INSTAGRAM_GRAPH_URL": instagram_url,
        "TOKENAGENT_VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def worker_process(
    env: dict[str, str], logdir: Path, *extra_args: str, beat: bool = True
) -> AgentProcess:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tokenagent",
        "worker",
        *(["--beat"] if beat else []),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *extra_args,
    ]
    return AgentProcess("worker", argv, env, logdir)


def web_process(env: dict[str, str], logdir: Path, port: int) -> AgentProcess:
    """The Procfile's web server with one worker, on loopback."""
    argv = [sys.executable, "-m", "tokenagent.web", "tokenagent.wsgi:application"]
    env = {**env, "WEB_HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    return AgentProcess("web", argv, env, logdir)
