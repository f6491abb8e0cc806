"""The agent as Heroku runs it, on services of its own, for the fault drills
(tests/integration/test_fault_drills.py) and the load benchmark (bench/load).

- a private ``redis-server`` (harness/processes.py, with the rest of the
  process plumbing) and a private PostgreSQL cluster (initdb + pg_ctl in a
  temporary directory) on free ports, so stopping or restarting them never
  disturbs the machine's shared services;
- the Procfile's ``web`` and ``worker`` lines run exactly as written, through
  ``bash -c`` with ``$PORT`` and ``WEB_CONCURRENCY`` like a dyno, each in its own
  process group (a SIGKILL takes the whole dyno down at once);
- an open-loop load generator on keep-alive connections that counts answers per
  phase and measures latency from each request's due time;
- a memory sampler summing RSS and PSS over each process tree.

Everything binds 127.0.0.1 and every run is bounded in time and count.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from harness.processes import (
    BIN,
    HOST,
    ROOT,
    Process,
    StackError,
    free_port,
    session_pids,
    tail,
    wait_for,
)
from harness.sandbox_control import SandboxControl

if TYPE_CHECKING:
    import psycopg


def procfile_lines(path: Path = ROOT / "Procfile") -> dict[str, str]:
    lines = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            lines[name.strip()] = command.strip()
    return lines


# --- Memory -------------------------------------------------------------------------------


def memory_kb(sid: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in kB over a process group's live processes.
    RSS double-counts pages shared after fork; PSS splits them fairly."""
    rss = pss = 0
    for pid in session_pids(sid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


class MemorySampler:
    """Samples the memory of some process groups every ``interval`` seconds; keeps peaks."""

    def __init__(self, groups: dict[str, Process], interval: float = 0.5) -> None:
        self.groups, self.interval = groups, interval
        self.peak_rss: Counter = Counter()
        self.peak_pss: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self.groups.items():
                if process.pid:
                    rss, pss = memory_kb(process.pid)
                    self.peak_rss[name] = max(self.peak_rss[name], rss)
                    self.peak_pss[name] = max(self.peak_pss[name], pss)
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --- Private services ---------------------------------------------------------------------


def postgres_bindir() -> str | None:
    """The server's own bin directory (symlinks such as /usr/local/bin/initdb resolved)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return str(Path(candidate).parent)
    found = shutil.which("initdb")
    return str(Path(found).resolve().parent) if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (trust auth, fsync off) on a free loopback port.
    As root, the server runs as the ``postgres`` OS user (postgres refuses root), in
    a directory of its own under the system temp dir (pytest's temp dirs are private
    to root, and concurrent pytest runs reset their modes)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise StackError("PostgreSQL's initdb/pg_ctl were not found (apt-get postgresql)")
        self.bindir = Path(bindir)
        self.root = Path(tempfile.mkdtemp(prefix="tokenagent-pg-"))
        self.dir = self.root / "data"
        self.sockdir = self.root
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/tokenagent"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise StackError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}\n{tail(self.log)}")

    def start(self) -> PrivatePostgres:
        self.log.touch()
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            for path in (self.root, self.log):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")
        # In the cluster's own config, so every start (and restart) uses this port,
        # never the machine's 5432.
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '{HOST}'\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\n"
            )
        self.up()
        import psycopg

        with psycopg.connect(
            f"postgres://postgres@{HOST}:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE tokenagent")
        return self

    def down(self) -> None:
        """Stop the server (fast shutdown: sessions are cut), keeping the cluster."""
        self._run("pg_ctl", "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def up(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-w", "start")

    def restart(self) -> None:
        """A fast restart: connections are cut, the server is back a moment later."""
        # -l again: without it the new server would hold our stdout pipe open.
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        try:
            if (self.dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)


# --- The agent's processes ------------------------------------------------------------------


def agent_env(
    *,
    database_url: str,
    redis_url: str,
    var_dir: Path,
    instagram_url: str,
    secret_key: str,
    port: int,
    **extra: object,
) -> dict[str, str]:
    """Production settings (``tokenagent.settings``, DEBUG off) configured only by
    environment variables, as on Heroku. TLS is terminated by Heroku's router, which
    is absent here: the redirect is off and nothing else about HTTPS changes."""
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "tokenagent.settings",
        "DEBUG": "False",
        "SECRET_KEY": secret_key,
        "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TOKENAGENT_VAR_DIR": str(var_dir),
        "INSTAGRAM_APP_ID": "1234567890123456",
        "INSTAGRAM_APP_SECRET": "drill-app-secret",
        "INSTAGRAM_API_URL": instagram_url,
        "INSTAGRAM_GRAPH_URL": instagram_url,
        "INSTAGRAM_AUTHORIZE_URL": f"{instagram_url}/oauth/authorize",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",  # what Heroku sets on a basic dyno
        # Bind loopback only (tokenagent/web.py); the Procfile line itself is run unchanged.
        "WEB_HOST": HOST,
        "LOG_LEVEL": "INFO",
        # The formation with worker dynos of its own: ``web`` is the web server alone
        # (scripts/dyno.py). The one-dyno formation passes EMBEDDED_WORKER=True.
        "EMBEDDED_WORKER": "False",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def procfile_process(name: str, env: dict[str, str], logdir: Path) -> Process:
    """The Procfile's ``name`` line, run the way a dyno runs it."""
    command = procfile_lines()[name]
    return Process(name, ["bash", "-c", command], env, logdir)


def django_run(
    env: dict[str, str], *argv: str, timeout: float = 120, stdin: str | None = None
) -> str:
    """``python manage.py ...`` (or ``-c``) with the agent's environment; returns stdout.
    Secrets go in through ``stdin``, never on the command line."""
    done = subprocess.run(
        [str(BIN / "python"), *argv],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise StackError(f"{' '.join(argv[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


SEED_ACCOUNTS = """
import json, sys
import django
django.setup()
from datetime import timedelta
from django.utils import timezone
from accounts.models import InstagramAccount
from accounts.services.tokens import token_store
now = timezone.now()
seed = json.load(sys.stdin)
for n, row in enumerate(seed["rows"]):
    account = InstagramAccount.objects.create(
        slug=row["slug"], username=row["slug"].replace("-", "_"),
        ig_user_id=f"{seed['ig_user_id_prefix']}{n:07d}", is_default=(n == 0))
    # Issued an hour ago as far as the agent knows: not due until made due.
    token_store(account=account, access_token=row["token"], issued_at=now - timedelta(hours=1),
                expires_at=now + timedelta(days=58), permissions=["instagram_business_basic"])
print(InstagramAccount.objects.count())
"""


def seed_accounts(env: dict[str, str], tokens: dict[str, str], *, ig_user_id_prefix: str) -> str:
    """One account per ``slug: token`` (the first is the default), each token issued
    an hour ago and valid 58 more days; ``ig_user_id`` is the prefix and a counter."""
    rows = [{"slug": slug, "token": token} for slug, token in tokens.items()]
    seed = {"ig_user_id_prefix": ig_user_id_prefix, "rows": rows}
    return django_run(env, "-c", SEED_ACCOUNTS, stdin=json.dumps(seed))


def http_get(
    port: int, path: str, timeout: float = 5, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def web_answers(port: int, path: str = "/healthz") -> bool:
    try:
        http_get(port, path, timeout=2)
    except OSError:
        return False
    return True


# --- The sandbox Instagram -------------------------------------------------------------------


class Sandbox:
    """The standalone sandbox Instagram (``manage.py sandbox_server``, state in its
    own memory) and its control API (accounts/sandbox/README.md), reduced to what
    the drills and the load benchmark need. Logs to a file, so a long run never
    blocks on a full pipe. It runs the production settings module (DEBUG off, a
    throwaway SECRET_KEY, which also signs its tokens unless SANDBOX_SIGNING_KEY is
    given); ``env`` adds to or overrides that environment."""

    def __init__(self, workdir: Path, *, start_timeout: float = 60, **env: str) -> None:
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "tokenagent.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "TOKENAGENT_VAR_DIR": str(workdir / "sandbox-var"),
            **env,
        }
        self.process = Process(
            "sandbox",
            [
                str(BIN / "python"),
                "manage.py",
                "sandbox_server",
                "--host",
                HOST,
                "--port",
                str(self.port),
            ],
            env,
            workdir,
        ).start()
        self.control = SandboxControl(f"http://{HOST}:{self.port}/sandbox")
        wait_for(self._up, timeout=start_timeout, what="the sandbox server")

    def _up(self) -> bool:
        if not self.process.running():
            raise StackError(f"the sandbox server exited:\n{self.process.tail()}")
        return web_answers(self.port, "/sandbox/_control/calls")

    @property
    def base_url(self) -> str:
        return self.control.base_url

    def mint(self, username: str) -> str:
        """A long-lived token Instagram issued two days ago, valid 58 more days."""
        return self.control.mint(username, age_hours=48, expires_in_days=58)["access_token"]

    def slow_refresh(self, seconds: float) -> None:
        self.control.delay("refresh", seconds)

    def fail_everything(self, on: bool) -> None:
        """Every call to every endpoint answers HTTP 500 until switched off."""
        self.control.mode("*", "http500" if on else None)

    def refresh_calls(self) -> int:
        return int(self.control.calls().get("refresh", 0))

    def accepts(self, token: str) -> bool:
        """Whether Instagram's ``/me`` answers this token with the profile."""
        import requests

        response = requests.get(
            f"{self.base_url}/v21.0/me",
            params={"fields": "user_id,username", "access_token": token},
            timeout=10,
        )
        return response.status_code == 200 and "username" in response.json()

    def close(self) -> None:
        self.process.stop()


# --- Load -------------------------------------------------------------------------------------


class Load:
    """Open-loop load on keep-alive connections: request ``i`` is due at
    ``start + i / rate``, spread over ``connections`` threads, each on its own
    connection. Answers are counted per phase (``load.phase = "..."``) by status
    code, or ``"error"`` for a connection failure or timeout. Latency is measured
    from the due time, so a stall counts against every request it delayed."""

    def __init__(
        self,
        *,
        port: int,
        paths: list[str],
        rate: float,
        connections: int = 16,
        timeout: float = 10,
        headers: dict[str, str] | None = None,
        duration: float | None = None,
    ) -> None:
        self.port, self.paths, self.rate = port, paths, rate
        self.connections, self.timeout = connections, timeout
        self.headers = headers or {}
        self.duration = duration
        self.phase = "start"
        self.counts: dict[str, Counter] = {}
        self.latencies: list[list[float]] = [[] for _ in range(connections)]
        self.error_kinds: Counter = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.stopped_at = 0.0

    def _count(self, phase: str, key: object) -> None:
        with self._lock:
            self.counts.setdefault(phase, Counter())[key] += 1

    def _worker(self, i: int) -> None:
        conn = None
        n = i
        interval = self.connections / self.rate
        due = self.started_at + i / self.rate
        end = self.started_at + self.duration if self.duration else float("inf")
        record = self.latencies[i]
        while not self._stop.is_set() and due < end:
            now = time.perf_counter()
            if now < due:
                if self._stop.wait(due - now):
                    break
            phase = self.phase
            path = self.paths[n % len(self.paths)]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
                conn.request("GET", path, headers=self.headers)
                response = conn.getresponse()
                response.read()
                self._count(phase, response.status)
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self._count(phase, "error")
                with self._lock:
                    self.error_kinds[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            record.append(time.perf_counter() - due)
            due += interval
            n += self.connections
        if conn is not None:
            conn.close()

    def start(self) -> Load:
        self.started_at = time.perf_counter() + 0.1
        self._threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True)
            for i in range(self.connections)
        ]
        for t in self._threads:
            t.start()
        return self

    def wait(self) -> None:
        for t in self._threads:
            t.join()
        self.stopped_at = time.perf_counter()

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def total(self, phase: str | None = None) -> Counter:
        with self._lock:
            if phase is not None:
                return Counter(self.counts.get(phase, {}))
            out: Counter = Counter()
            for counter in self.counts.values():
                out.update(counter)
            return out

    @staticmethod
    def server_errors(counter: Counter) -> int:
        return sum(v for k, v in counter.items() if isinstance(k, int) and k >= 500)

    def percentile_ms(self, q: float) -> float:
        values = sorted(v for per in self.latencies for v in per)
        if not values:
            return float("nan")
        index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
        return values[index] * 1000
