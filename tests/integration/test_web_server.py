"""The Procfile's ``web`` line as a dyno runs it (gunicorn, two workers, DEBUG off),
on the one-machine defaults: how it treats the connections a proxy keeps open."""

import http.client
import secrets

import pytest

from harness import procfile_stack as stack
from harness.processes import HOST, free_port, wait_for
from tokenagent.gunicorn_config import MAX_REQUESTS_PER_CONNECTION

PATH = "/token/nobody.json"  # a token URL: unlimited, cheap, answers 404 here


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web")
    port = free_port()
    env = stack.agent_env(
        database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
        redis_url="",  # blank: the file cache and broker of a one-machine install
        var_dir=workdir,
        instagram_url="http://127.0.0.1:9",
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


def get(conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
    conn.request("GET", PATH)
    response = conn.getresponse()
    response.read()
    return response


def test_a_kept_alive_connection_is_handed_back_after_a_few_requests(web):
    # Heroku's router keeps connections open; the server closes each after
    # MAX_REQUESTS_PER_CONNECTION requests so that the reconnection can land on the
    # less busy worker, instead of one worker serving everything for minutes.
    port, _ = web
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for n in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
            response = get(conn)
            assert response.status == 404
            expected = "close" if n == MAX_REQUESTS_PER_CONNECTION else "keep-alive"
            assert response.getheader("Connection", "").lower() == expected, n
        assert response.will_close
    finally:
        conn.close()
    # The client simply reconnects.
    again = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        assert get(again).status == 404
    finally:
        again.close()


def test_requests_are_not_logged_a_second_time(web):
    # Heroku's router logs every request (path, status, time); gunicorn's access log
    # would repeat each one at a quarter of the web process's CPU (bench/load).
    port, process = web
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for _ in range(3):
            assert get(conn).status == 404
    finally:
        conn.close()
    log = process.log()
    assert "Booting worker" in log  # the log is there, and gunicorn writes to it
    assert PATH not in log
