"""The default broker (no REDIS_URL): Kombu's filesystem transport, configured by
tokenagent.settings, carries messages between separate processes and keeps them
across a consumer restart. Every producer and consumer here is its own
interpreter, importing the Celery app exactly as web, worker and beat do."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from tokenagent.celery import app

mode, queue = sys.argv[1], sys.argv[2]
with app.connection_for_write() as conn:
    assert conn.transport_cls == "filesystem", conn.transport_cls
    q = conn.SimpleQueue(queue)
    if mode == "put":
        for body in sys.argv[3:]:
            q.put({"body": body})
    else:
        timeout, ack = float(sys.argv[3]), sys.argv[4] == "ack"
        try:
            message = q.get(block=True, timeout=timeout)
        except q.Empty:
            print(json.dumps({"empty": True}), flush=True)
        else:
            if ack:
                message.ack()
            print(json.dumps(message.payload), flush=True)
    # A graceful close hands unacknowledged messages back to the queue.
    q.close()
"""


@pytest.fixture
def broker(tmp_path):
    script = tmp_path / "broker_probe.py"
    script.write_text(SCRIPT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(BASE_DIR),
        "DJANGO_SETTINGS_MODULE": "tokenagent.settings",
        "SECRET_KEY": "broker-test-secret-key",
        "REDIS_URL": "",  # the embedded broker, even if a .env names a Redis
        "TOKENAGENT_VAR_DIR": str(tmp_path / "var"),
    }

    def start(*args):
        return subprocess.Popen(
            [sys.executable, str(script), *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(*args):
        proc = start(*args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else None

    return start, run, tmp_path / "var" / "broker" / "queue"


@pytest.mark.slow
def test_messages_cross_processes_and_survive_a_consumer_restart(broker):
    start, run, queue_dir = broker
    queue = "tokenagent-broker-test"

    # A consumer is already waiting when another process publishes.
    waiting = start("get", queue, "15", "ack")
    run("put", queue, "first", "second")
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    received = {json.loads(out)["body"]}
    assert received <= {"first", "second"}

    # That consumer is gone; the other message waits on disk in the configured folder.
    assert len(list(queue_dir.glob(f"*.{queue}.msg"))) == 1

    # A restarted consumer takes it but stops before acknowledging it...
    unacked = run("get", queue, "10", "no-ack")["body"]
    assert unacked not in received
    # ...so the next consumer gets it again.
    assert run("get", queue, "10", "ack") == {"body": unacked}
    received.add(unacked)

    assert received == {"first", "second"}
    assert run("get", queue, "1", "ack") == {"empty": True}
