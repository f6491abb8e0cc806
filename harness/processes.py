"""Process plumbing shared by the integration tests (refresh worker, fault drills,
Heroku parity) and the benchmarks (bench/load, bench/refresh_fanout):

- free loopback ports and polling with a deadline (``wait_for``);
- stopping a plain child process (``terminate``: SIGTERM, then SIGKILL);
- a command in its own session/process group, logging to a file, that can be
  stopped (SIGTERM, then SIGKILL) or killed outright, children included;
- readers of /proc: a session's processes, a process's children, the tree;
- a private ``redis-server`` on a free port (never the machine's shared one:
  stopping it is part of several tests), optionally with a password and TLS only
  (a self-signed certificate), as Heroku Key-Value Store hands one out.

Everything binds 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


class StackError(RuntimeError, AssertionError):
    """A service could not be started or did not answer in time (the message says
    which and why). An AssertionError too, so a timeout inside a test reads as a
    failed expectation."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); raise
    StackError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def terminate(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM ``proc``; SIGKILL it if it has not exited after ``timeout`` seconds.
    Reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a whole process group; a group already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# --- /proc ------------------------------------------------------------------------------------


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields after the command name) for every process: state, ppid, pgrp,
    session, ..."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        yield int(entry), text[text.rindex(")") + 2 :].split()


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (a Process and its children)."""
    return [pid for pid, fields in proc_stats() if fields[0] != "Z" and int(fields[3]) == sid]


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (a prefork worker's pool processes, and its beat)."""
    return [child for child, fields in proc_stats() if int(fields[1]) == pid]


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(sid: int) -> float:
    """User + system CPU of a session's (process group's) live processes and the
    children they reaped (a recycled pool process counts)."""
    ticks = sum(
        sum(int(f) for f in fields[11:15]) for _, fields in proc_stats() if int(fields[3]) == sid
    )
    return ticks / TICKS_PER_SECOND


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, fields in proc_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


# --- Processes --------------------------------------------------------------------------------


class Process:
    """A command in its own session/process group, logging to a file (one per start)."""

    stop_wait: float = 25  # seconds from SIGTERM to SIGKILL
    kill_wait: float = 15  # seconds for the leader to be reaped after SIGKILL

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name, self.argv, self.env, self.logdir = name, argv, env, logdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.logdir / f"{self.name}-{self.starts}.log"

    def start(self) -> Process:
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown handler runs, as when a dyno crashes."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.signal_group(signal.SIGKILL)
        self.proc.wait(self.kill_wait)
        # Children re-parented to init may outlive the leader for a moment.
        wait_for(lambda: not session_pids(pid), timeout=15, what=f"{self.name} to die")
        self.proc = None

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the group; SIGKILL whatever is left after ``timeout`` seconds."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_wait if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def log(self) -> str:
        """The whole log of the latest start."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self) -> str:
        return tail(self.log_path)

    def errors(self, lines: int = 8, width: int = 600) -> str:
        """The log's error lines and tracebacks, without the access log around them."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        keep = [
            line
            for line in text.splitlines()
            if " ERROR " in line
            or " CRITICAL " in line
            or "Traceback" in line
            or line.startswith(("  ", "\t"))
            or "Error:" in line
        ]
        return "\n".join(line[:width] for line in keep[-lines:])


# --- A private Redis --------------------------------------------------------------------------


class PrivateRedis:
    """redis-server on a free loopback port, no persistence; stop/start keep the port.
    ``password``: clients must AUTH. ``tls``: the port speaks TLS only, with a
    self-signed certificate for ``common_name`` made by openssl (``rediss://``)."""

    def __init__(
        self,
        workdir: Path,
        *,
        start_timeout: float = 15,
        password: str = "",
        tls: bool = False,
        common_name: str = "localhost",
    ) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.password, self.tls = password, tls
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server was not found (Debian: apt-get install redis-server)")
        self.port = free_port()
        argv = [server, "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        if password:
            argv += ["--requirepass", password]
        if tls:
            cert, key = _self_signed_certificate(workdir, common_name)
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            argv += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
        else:
            argv += ["--port", str(self.port)]
        self.process = Process("redis", argv, {"PATH": os.environ.get("PATH", "")}, workdir)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}{HOST}:{self.port}/0"

    def client(self, socket_timeout: float = 5) -> redis.Redis:
        """A redis-py client of this server (the certificate not checked)."""
        import redis

        tls = {"ssl_cert_reqs": None} if self.tls else {}
        return redis.Redis.from_url(self.url, socket_timeout=socket_timeout, **tls)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client(socket_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def start(self) -> PrivateRedis:
        self.process.start()
        wait_for(self.ping, timeout=self.start_timeout, what="redis-server")
        return self

    def stop(self) -> None:
        """Gone at once, as when the Redis host dies (no clean client disconnect)."""
        self.process.kill()


def _self_signed_certificate(workdir: Path, common_name: str) -> tuple[Path, Path]:
    """A certificate and key for ``common_name`` in ``workdir``, made by openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("openssl was not found (needed for a TLS redis-server)")
    cert, key = workdir / "redis.crt", workdir / "redis.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
