"""The Procfile's ``web`` line as a dyno runs it (Granian through tokenagent/web.py,
two workers, DEBUG off), on the one-machine defaults: how it spreads the
connections a proxy keeps open, what it logs, and token reads beside slow
requests."""

import http.client
import os
import re
import secrets
import socket
import threading
from pathlib import Path

import pytest

from harness import procfile_stack as stack
from harness.processes import HOST, child_pids, free_port, wait_for

PATH = "/token/nobody.json"  # a token URL: unlimited, cheap, answers 404 here
SLOW = 3  # OAuth callbacks held at once; each worker has tokenagent.web.BLOCKING_THREADS


class Tarpit:
    """A stand-in for Instagram's OAuth API that accepts connections and answers
    none of them until released: each OAuth callback exchanging its code there
    holds a thread of the web process for as long as the test wants."""

    def __init__(self) -> None:
        self.sock = socket.create_server((HOST, 0))
        self.url = f"http://{HOST}:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.released = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.released.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def release(self) -> None:
        self.released.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture(scope="module")
def tarpit():
    pit = Tarpit()
    yield pit
    pit.release()


@pytest.fixture(scope="module")
def web(tmp_path_factory, tarpit):
    workdir = tmp_path_factory.mktemp("web")
    port = free_port()
    env = stack.agent_env(
        database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
        redis_url="",  # blank: the file cache and broker of a one-machine install
        var_dir=workdir,
        instagram_url=tarpit.url,
        secret_key=secrets.token_urlsafe(50),
        port=port,
    )
    stack.django_run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    process = stack.procfile_process("web", env, workdir).start()
    try:
        wait_for(lambda: stack.web_answers(port, PATH), timeout=60, what="the web process")
        yield port, process
    finally:
        process.stop()


def get(conn: http.client.HTTPConnection, path: str = PATH, headers=None):
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response


def established_to(port: int, pid: int) -> int:
    """How many of ``pid``'s sockets are established connections on local ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def test_kept_alive_connections_are_spread_over_the_workers(web):
    # Heroku's router keeps connections open for minutes, and a connection stays with
    # the worker that accepted it: were they all on one worker, it would serve
    # everything on one core while the other idles. Each Granian worker listens on
    # its own socket (SO_REUSEPORT) and the kernel spreads new connections over them.
    port, process = web
    workers = child_pids(process.pid)
    assert len(workers) == 2  # WEB_CONCURRENCY
    conns = [http.client.HTTPConnection(HOST, port, timeout=10) for _ in range(16)]
    try:
        for conn in conns:
            response = get(conn)
            assert response.status == 404 and not response.will_close
        per_worker = [established_to(port, pid) for pid in workers]
        assert sum(per_worker) == 16
        assert min(per_worker) > 0, per_worker  # all 16 on one worker: p = 2**-15
    finally:
        for conn in conns:
            conn.close()


def test_requests_are_not_logged_a_second_time(web):
    # Heroku's router logs every request (path, status, time); an access log in the
    # web process would repeat each one at a quarter of its CPU (bench/load).
    port, process = web
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for _ in range(3):
            assert get(conn).status == 404
    finally:
        conn.close()
    log = process.log()
    # The log is there, Granian writes to it, one line per event through the
    # agent's formatter (tokenagent/web.py LOGGING).
    assert re.search(r"^\S+ \S+ INFO _granian Listening at: http://", log, re.M)
    assert PATH not in log


def start_sign_in(port: int) -> tuple[str, str]:
    """GET /login/: the session cookie and the OAuth state it is bound to."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        response = get(conn, "/login/")
        assert response.status == 302
        state = re.search(r"[?&]state=([^&]+)", response.getheader("Location", ""))
        assert state is not None
        cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
        return cookie, state.group(1)
    finally:
        conn.close()


def test_slow_oauth_callbacks_do_not_hold_up_token_reads(web, tarpit):
    # An OAuth callback waits on Instagram's code exchange (up to
    # INSTAGRAM_READ_TIMEOUT); while a few wait, token reads are still answered.
    # Here the exchanges hang until the test releases them, so the reads must be
    # answered while every slow callback is still in flight.
    port, _ = web
    sign_ins = [start_sign_in(port) for _ in range(SLOW)]
    answers: list[int] = []

    def callback(cookie: str, state: str) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            path = f"/oauth/instagram/callback/?code=slow-code&state={state}"
            answers.append(get(conn, path, {"Cookie": cookie}).status)
        finally:
            conn.close()

    slow = [threading.Thread(target=callback, args=s, daemon=True) for s in sign_ins]
    for thread in slow:
        thread.start()
    try:
        wait_for(lambda: len(tarpit.held) >= SLOW, timeout=30, what="the code exchanges")
        statuses = []
        for _ in range(40):  # new connections: both workers get some
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            try:
                statuses.append(get(conn).status)
            finally:
                conn.close()
        assert statuses == [404] * 40
        assert all(thread.is_alive() for thread in slow) and answers == []
    finally:
        tarpit.release()
        for thread in slow:
            thread.join(30)
    # Released, each callback ends with the agent's error page (Instagram failed).
    assert len(answers) == SLOW and all(status >= 400 for status in answers)
