"""The one-dyno formation's launcher: the web server given on the command line and,
beside it, the Procfile's ``worker`` line (Celery with embedded beat), in one dyno.

The Procfile's ``web`` line is ``python scripts/dyno.py <the web server command>``, so
the server's command and the worker's each stay written once, in the Procfile.

- ``EMBEDDED_WORKER=False`` (the bigger formation, with ``worker`` dynos of its own):
  the launcher becomes the web server (``exec``), exactly as if the ``web`` line
  named it alone.
- Otherwise it starts both and watches them. A worker that dies (killed, out of
  memory) is started again after a pause that doubles from 1 s to 30 s, while the
  web server goes on serving; nothing is lost meanwhile (a refresh it held keeps its
  old token, and beat's next tick, from the database, finds it due again). A web
  server that dies ends the dyno: the worker is stopped and the launcher exits with
  the server's status, so Heroku restarts the dyno.
- Shutdown: Heroku sends SIGTERM to every process of the dyno at once, honcho and
  systemd to the whole process group, which the children share with the launcher.
  So each child already has its own SIGTERM (Celery with ``REMAP_SIGTERM=SIGQUIT``
  finishes the task in hand within ``CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT``, or puts it
  back in the queue), and the launcher forwards nothing: a second SIGTERM would make
  Celery cancel that task. It waits for both, kills what is left after
  ``STOP_SECONDS`` (before Heroku's SIGKILL at 30 s) and exits. Where only the
  launcher would be signalled (a container's PID 1), run it under an init that
  signals the group (``tini -g``).

Standard library only: the launcher's memory counts against the dyno's 512 MB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROCFILE = ROOT / "Procfile"
STOP_SECONDS = 27.0  # Heroku sends SIGKILL 30 s after SIGTERM
RESTART_PAUSES = (1, 2, 4, 8, 16, 30)  # seconds before each new start of the worker
STEADY_SECONDS = 60  # a worker that ran this long starts again at the first pause
POLL_SECONDS = 0.2
REAP_SECONDS = 5.0


def say(message: str) -> None:
    print(f"dyno: {message}", flush=True)


def embedded_worker_wanted(environ: dict[str, str]) -> bool:
    value = environ.get("EMBEDDED_WORKER", "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"dyno: EMBEDDED_WORKER must be True or False, not {value!r}")


def procfile_line(name: str, path: Path = PROCFILE) -> str:
    """The command of the Procfile's ``name`` line."""
    for line in path.read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name and not line.lstrip().startswith("#"):
            return command.strip()
    raise SystemExit(f"dyno: the Procfile has no {name!r} line")


class Child:
    """One command of the dyno, in the launcher's process group."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv = name, argv
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT)
        self.started = time.monotonic()
        say(f"{self.name} started (pid {self.proc.pid})")

    def exited(self) -> int | None:
        """The exit status once the command has ended (its process reaped), else None."""
        return None if self.proc is None else self.proc.poll()

    def kill_tree(self) -> None:
        """SIGKILL the child and whatever it started (pool processes, beat)."""
        if self.proc is None:
            return
        kill(descendants(self.proc.pid))
        self.proc.wait()


def become_subreaper() -> None:
    """Processes orphaned below the launcher (a killed worker's pool processes) are
    re-parented to it rather than to init, so it can end and reap them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # not Linux: orphans go to init, as without the launcher


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def process_children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children = process_children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class Dyno:
    def __init__(self, server: list[str], worker: str) -> None:
        self.server = Child("web server", server)
        self.worker = Child("worker", ["bash", "-c", worker])
        self.stopping_since: float | None = None
        self.pause = 0  # index into RESTART_PAUSES
        self.restart_at: float | None = None
        self.reap_at = 0.0

    def on_signal(self, signum: int, frame: object) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            say(f"{signal.Signals(signum).name}: waiting for the web server and the worker")

    def orphans(self) -> list[int]:
        """The launcher's children other than the web server and the worker."""
        mine = {c.proc.pid for c in (self.server, self.worker) if c.proc is not None}
        return [pid for pid in process_children().get(os.getpid(), []) if pid not in mine]

    def run(self) -> int:
        become_subreaper()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        self.server.start()
        self.worker.start()
        status = 0
        while True:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            if now >= self.reap_at:  # orphans that exited on their own
                self.reap_at = now + REAP_SECONDS
                reap(self.orphans())
            if self.stopping_since is not None:
                done = [c.exited() is not None for c in (self.server, self.worker)]
                if all(done):
                    return status
                if now - self.stopping_since > STOP_SECONDS:
                    for child in (self.server, self.worker):
                        if child.exited() is None:
                            say(f"{child.name} still running after {STOP_SECONDS:.0f} s: killed")
                            child.kill_tree()
                    return 1
                continue
            code = self.server.exited()
            if code is not None:
                say(f"the web server exited ({code}): stopping the worker, the dyno ends")
                status = code or 1
                self.stopping_since = now
                if self.worker.exited() is None and self.worker.proc is not None:
                    self.worker.proc.send_signal(signal.SIGTERM)
                continue
            self.watch_worker(now)

    def watch_worker(self, now: float) -> None:
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.worker.start()
            return
        code = self.worker.exited()
        if code is None:
            return
        # Whatever the worker left behind (pool processes, now ours) goes with it.
        self.worker.kill_tree()
        orphans = self.orphans()
        kill(orphans)
        for pid in orphans:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if now - self.worker.started > STEADY_SECONDS:
            self.pause = 0
        pause = RESTART_PAUSES[min(self.pause, len(RESTART_PAUSES) - 1)]
        self.pause += 1
        say(f"the worker exited ({code}); starting it again in {pause} s")
        self.restart_at = now + pause


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python scripts/dyno.py WEB-SERVER-COMMAND ...")
    if not embedded_worker_wanted(dict(os.environ)):
        os.execvp(argv[0], argv)
    return Dyno(argv, procfile_line("worker")).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
