"""Server drills (not a test): ``python -m bench.token_endpoints.drills``.

What the web server must keep besides speed, checked on each candidate (the
Procfile's line and the others of ``bench.token_endpoints``), each started as
the benchmark starts it, with recycling made frequent so it happens during the
drill (gunicorn ``--max-requests 2000``; Granian, which recycles a worker when its
memory passes a limit, gets SIGHUP every 15 s: the same graceful respawn):

- slow requests: 3 requests holding a thread 6 s, meanwhile 100 token reads (max ms);
- keep-alive: a connection reused after 35, 65 and 95 s idle (Heroku's router
  keeps idle connections to a dyno up to 90 s);
- recycling: 8 keep-alive clients reading a token for 75 s while workers are
  recycled: requests that failed (connection closed without an answer);
- SIGTERM: 2 requests in flight: answered?, a new connection refused?, seconds
  to exit (Heroku kills 30 s after SIGTERM).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.token_endpoints.__main__ import (
    BIN,
    HOST,
    SLUG,
    base_env,
    bench_command,
    free_port,
    prepare,
    server_commands,
    start_server,
    stop_server,
)

TOKEN = f"/token/{SLUG}.json"


def frequent_recycling(command: str) -> str:
    if command.startswith("gunicorn "):
        command = re.sub(r"--max-requests \d+", "--max-requests 2000", command)
        return re.sub(r"--max-requests-jitter \d+", "--max-requests-jitter 200", command)
    return command


def hup_every(proc: subprocess.Popen, seconds: float, stop: threading.Event) -> None:
    """Granian (tokenagent/web.py) respawns its workers one by one on SIGHUP."""
    while not stop.wait(seconds):
        os.kill(proc.pid, signal.SIGHUP)


def request(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> int:
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=40)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        if own:
            conn.close()


def slow_requests(port: int) -> str:
    slow = [threading.Thread(target=request, args=(port, "/bench/sleep/6")) for _ in range(3)]
    for t in slow:
        t.start()
    time.sleep(0.5)
    worst = 0.0
    for _ in range(100):
        start = time.perf_counter()
        request(port, TOKEN)
        worst = max(worst, time.perf_counter() - start)
    for t in slow:
        t.join()
    return f"token reads beside 3 slow requests: max {worst * 1000:.1f} ms"


def keep_alive(port: int) -> str:
    results: dict[int, str] = {}

    def idle(seconds: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        request(port, TOKEN, conn)
        time.sleep(seconds)
        try:
            request(port, TOKEN, conn)
            results[seconds] = "reused"
        except (OSError, http.client.HTTPException) as exc:
            results[seconds] = type(exc).__name__
        finally:
            conn.close()

    threads = [threading.Thread(target=idle, args=(s,)) for s in (35, 65, 95)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return "keep-alive after idle: " + ", ".join(f"{s} s {r}" for s, r in sorted(results.items()))


def recycling(port: int, proc: subprocess.Popen, command: str, seconds: float = 75) -> str:
    counts: Counter = Counter()
    stop = threading.Event()
    if "tokenagent.web" in command:
        threading.Thread(target=hup_every, args=(proc, 15, stop), daemon=True).start()

    def client() -> None:
        conn = None
        while not stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection(HOST, port, timeout=10)
                conn.request("GET", TOKEN)
                response = conn.getresponse()
                response.read()
                counts[response.status] += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                counts[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.005)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return f"{seconds:.0f} s of keep-alive reads while workers recycle: {dict(counts)}"


def sigterm(proc: subprocess.Popen, port: int) -> str:
    answers: list[int | str] = []

    def slow() -> None:
        try:
            answers.append(request(port, "/bench/sleep/5"))
        except (OSError, http.client.HTTPException) as exc:
            answers.append(type(exc).__name__)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1)
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.5)
    try:
        new = str(request(port, TOKEN))
    except OSError as exc:
        new = type(exc).__name__
    try:
        proc.wait(timeout=40)
        took = f"{time.monotonic() - start:.1f} s"
    except subprocess.TimeoutExpired:
        took = "more than 40 s"
    for t in threads:
        t.join()
    return f"SIGTERM: in-flight answered {answers}, a new request {new}, exited after {took}"


def main() -> int:
    commands = server_commands()
    parser = argparse.ArgumentParser(prog="python -m bench.token_endpoints.drills")
    parser.add_argument("--servers", default=",".join(commands))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drills-") as tmp:
        env = base_env(Path(tmp) / "var", free_port(), args.workers, None)
        prepare(env)
        for name in args.servers.split(","):
            command = frequent_recycling(bench_command(commands[name]))
            if not shutil.which(shlex.split(command)[0], path=f"{BIN}:{os.environ['PATH']}"):
                print(f"skipping {name}: not installed")
                continue
            print(f"{name}: {command}", flush=True)
            port = free_port()
            log = Path(tmp) / f"{name}.log"
            proc = start_server(command, {**env, "PORT": str(port)}, port, log)
            try:
                for drill in (slow_requests, keep_alive):
                    print(f"  {drill(port)}", flush=True)
                print(f"  {recycling(port, proc, command)}", flush=True)
                print(f"  {sigterm(proc, port)}", flush=True)
            finally:
                stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
