"""scripts/dyno.py, the one-dyno launcher, with stand-in commands for the web server
and the worker (the real ones run in tests/integration/test_one_dyno.py): it
becomes the server alone when the embedded worker is off, restarts a worker that
dies while the server serves on, ends with the server, forwards no second SIGTERM
(Celery would cancel its task), and kills what outlives its stop deadline."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.processes import session_pids, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
LAUNCHER = BASE_DIR / "scripts" / "dyno.py"

# Runs the launcher's Dyno with the given server argv and worker command line.
RUN = textwrap.dedent(
    """
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("dyno", sys.argv[1])
    dyno = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dyno)
    dyno.STOP_SECONDS = float(sys.argv[2])
    dyno.RESTART_PAUSES = (0.5,)
    sys.exit(dyno.Dyno(json.loads(sys.argv[3]), sys.argv[4]).run())
    """
)
# A stand-in that counts the SIGTERMs it gets (in a file), and exits 1 s after the first.
COUNTING = textwrap.dedent(
    """
    import signal, sys, time
    got = []
    def on_term(signum, frame):
        got.append(signum)
        open(sys.argv[1], "w").write(str(len(got)))
    signal.signal(signal.SIGTERM, on_term)
    while not got:
        time.sleep(0.05)
    time.sleep(1)
    """
)


def launch(tmp_path, server: list[str], worker: str, stop_seconds: float = 27):
    import json

    log = open(tmp_path / "dyno.log", "wb")  # noqa: SIM115 (closed by the test's end)
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(LAUNCHER), str(stop_seconds), json.dumps(server), worker],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def command(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def children(pid: int) -> list[int]:
    return [p for p in session_pids(pid) if p != pid]


@pytest.fixture
def cleanup():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_with_the_embedded_worker_off_it_becomes_the_web_server(tmp_path):
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), sys.executable, "-c", "import os; print(os.getpid())"],
        env={**os.environ, "EMBEDDED_WORKER": "False"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # exec: the server is the launcher's own process, nothing else runs.
    assert "dyno:" not in out.stdout
    assert out.stdout.strip().isdigit()


def test_a_malformed_switch_stops_startup():
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), "true"],
        env={**os.environ, "EMBEDDED_WORKER": "maybe"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0 and "EMBEDDED_WORKER must be True or False" in out.stderr


def test_the_worker_line_comes_from_the_procfile():
    import runpy

    dyno = runpy.run_path(str(LAUNCHER), run_name="dyno")  # not __main__: nothing runs
    assert dyno["procfile_line"]("worker").startswith("REMAP_SIGTERM=SIGQUIT celery ")


def test_a_dead_worker_is_started_again_while_the_server_serves_on(tmp_path, cleanup):
    proc = launch(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"], "sleep 60")
    cleanup.append(proc)
    server, worker = wait_for(
        lambda: len(children(proc.pid)) == 2 and sorted(children(proc.pid)),
        timeout=20,
        what="server and worker",
    )
    sleeper = next(p for p in (server, worker) if command(p).startswith(b"sleep"))
    os.kill(sleeper, signal.SIGKILL)
    again = wait_for(
        lambda: (now := children(proc.pid)) and len(now) == 2 and sleeper not in now and now,
        timeout=20,
        what="the worker started again",
    )
    assert ({server, worker} - {sleeper}) <= set(again)  # the server never stopped
    assert proc.poll() is None
    assert "starting it again" in (tmp_path / "dyno.log").read_text()


def test_sigterm_to_the_group_is_not_forwarded_again(tmp_path, cleanup):
    server_count, worker_count = tmp_path / "server.count", tmp_path / "worker.count"
    proc = launch(
        tmp_path,
        [sys.executable, "-c", COUNTING, str(server_count)],
        f"{sys.executable} -c '{COUNTING}' {worker_count}",
    )
    cleanup.append(proc)
    wait_for(lambda: len(children(proc.pid)) >= 2, timeout=20, what="server and worker")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)  # as honcho does; Heroku signals each process
    assert proc.wait(20) == 0
    assert server_count.read_text() == "1"
    assert worker_count.read_text() == "1"


def test_the_dyno_ends_with_the_web_server(tmp_path, cleanup):
    proc = launch(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"], "sleep 60")
    cleanup.append(proc)
    assert proc.wait(30) == 3
    assert not children(proc.pid)
    assert "the web server exited (3)" in (tmp_path / "dyno.log").read_text()


def test_what_ignores_sigterm_is_killed_at_the_deadline(tmp_path, cleanup):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = launch(tmp_path, [sys.executable, "-c", stubborn], "sleep 60", stop_seconds=1)
    cleanup.append(proc)
    wait_for(lambda: len(children(proc.pid)) >= 2, timeout=20, what="server and worker")
    time.sleep(0.5)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(20) == 1
    assert time.monotonic() - started < 10
    assert not children(proc.pid)
    assert "still running after" in (tmp_path / "dyno.log").read_text()
