"""Fault drills: the Procfile's ``web`` and ``worker`` (with beat) on a private
PostgreSQL and a private Redis, against the sandbox Instagram, while a load
generator requests the token endpoints. In turn:

(a) Redis is stopped and started again;
(b) the worker is killed with SIGKILL in the middle of a refresh and restarted;
(c) Instagram fails every call for a while;
(d) PostgreSQL stops for five seconds and starts again.

Each drill makes its own batch of accounts due just before the fault, so beat is
refreshing while it happens. Throughout, a monitor reads every stored token twice
a second. The drills then require: every account holds a token Instagram accepts
(``/me``), every due account was refreshed, no stored token ever went back to
an older one (version and expiry only move forward), and the token endpoints
answered no 5xx during (a), (b) and (c). The 5xx count of (d), during which
some requests must reach the stopped database, is reported.

The same drills, but (a), run on the one-dyno formation (web server and worker in
one ``web`` dyno, no Redis): test_one_dyno_drills.py.

Run alone: ``pytest tests/integration/test_fault_drills.py -s`` prints the
counts. About three minutes; marked slow. Never skipped in CI (``CI=true``):
a missing prerequisite fails loudly there.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import procfile_stack as stack
from harness.processes import (
    HOST,
    PrivateRedis,
    StackError,
    free_port,
    process_tree,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
]

TICK = 2  # beat period in the drills, seconds
LOCK_SECONDS = 10  # a killed worker's claim lapses after this
LOAD_RATE = 150  # token requests per second, all drills long
BATCHES = ("a", "b", "c", "d")
PER_BATCH = 3
STEADY = 3  # accounts never due during the drills
RECOVERY_TIMEOUT = 60


def _require(condition: bool, what: str) -> None:
    """Skip on a developer machine without the tool; fail loudly in CI."""
    if condition:
        return
    if _in_ci():
        pytest.fail(f"fault drills cannot run: {what} (CI must not skip them)")
    pytest.skip(f"fault drills need {what}")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("TOKENAGENT_REQUIRE_LAYERS")
    )


# --- The drill ------------------------------------------------------------------------------------

STORED = """
import hashlib, json
import django
django.setup()
from accounts.models import InstagramAccount
out = {}
for a in InstagramAccount.objects.select_related("access_token"):
    t = a.access_token
    out[a.slug] = {"status": a.status, "version": t.version,
                   "sha": hashlib.sha256(t.value.encode()).hexdigest()}
print(json.dumps(out))
"""


class Monitor(threading.Thread):
    """Reads every stored token twice a second, straight from PostgreSQL, and
    records any step backwards: a lower version, an earlier expiry, or a new
    value under the same version."""

    def __init__(self, pg: stack.PrivatePostgres) -> None:
        super().__init__(daemon=True)
        self.pg = pg
        self.last: dict[str, tuple] = {}
        self.violations: list[str] = []
        self.samples = 0
        self.failed_reads = 0
        self._halt = threading.Event()

    def run(self) -> None:
        conn = None
        while not self._halt.wait(0.5):
            try:
                if conn is None:
                    conn = self.pg.connect()
                rows = conn.execute(
                    "SELECT a.slug, t.version, t.expires_at, md5(t.ciphertext) "
                    "FROM accounts_accesstoken t JOIN accounts_instagramaccount a "
                    "ON a.id = t.account_id"
                ).fetchall()
            except Exception:  # noqa: BLE001 (PostgreSQL restarting: read again later)
                self.failed_reads += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            self.samples += 1
            for slug, version, expires_at, digest in rows:
                self.check(slug, (version, expires_at, digest))
        if conn is not None:
            conn.close()

    def check(self, slug: str, now: tuple) -> None:
        before = self.last.get(slug)
        self.last[slug] = now
        if before is None:
            return
        (v0, e0, d0), (v1, e1, d1) = before, now
        if v1 < v0:
            self.violations.append(f"{slug}: version went from {v0} back to {v1}")
        elif v1 == v0 and (d1 != d0 or e1 != e0):
            self.violations.append(f"{slug}: token changed without a new version ({v0})")
        elif e1 < e0:
            self.violations.append(f"{slug}: expiry went back from {e0} to {e1}")

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class Drill:
    """The stack and its load. ``one_dyno``: the one-dyno formation (the web line
    with its embedded worker, no Redis), and the feed URLs loaded too."""

    def __init__(self, workdir: Path, *, one_dyno: bool = False) -> None:
        self.workdir = workdir
        self.one_dyno = one_dyno
        self.report: dict = {}
        self.killed_worker: int | None = None
        self.logdir = workdir / "logs"
        self.logdir.mkdir()
        self.redis = None if one_dyno else PrivateRedis(workdir).start()
        self.pg = stack.PrivatePostgres().start()
        self.instagram = stack.Sandbox(workdir)
        self.web_port = free_port()
        var_dir = workdir / "var"
        var_dir.mkdir()
        self.env = stack.agent_env(
            database_url=self.pg.url,
            redis_url=self.redis.url if self.redis else "",
            var_dir=var_dir,
            instagram_url=self.instagram.base_url,
            secret_key=secrets.token_urlsafe(50),
            port=self.web_port,
            REFRESH_TICK_SECONDS=TICK,
            REFRESH_LOCK_SECONDS=LOCK_SECONDS,
            REFRESH_RETRY_BACKOFF_BASE=1,
            REFRESH_RETRY_BACKOFF_MAX=3,
            REFRESH_MAX_RETRIES=8,
            REFRESH_FAILURE_COOLDOWN_SECONDS=5,
            INSTAGRAM_READ_TIMEOUT=15,
            LOG_LEVEL="INFO",
            EMBEDDED_WORKER=one_dyno,
            # The one dyno's two worker processes share its CPU with the web server
            # and the load: fewer posts make its first syncs, which the drills wait
            # for, shorter (feed volume is bench/feed's business).
            **({"FEED_MAX_POSTS": 6} if one_dyno else {}),
        )
        stack.django_run(self.env, "manage.py", "migrate", "--noinput", "-v", "0")
        self.slugs = {"steady": [f"steady-{i}" for i in range(1, STEADY + 1)]}
        for batch in BATCHES:
            self.slugs[batch] = [f"{batch}-{i}" for i in range(1, PER_BATCH + 1)]
        tokens = {
            slug: self.instagram.mint(slug.replace("-", "_"))
            for slugs in self.slugs.values()
            for slug in slugs
        }
        stack.seed_accounts(self.env, tokens, ig_user_id_prefix="1784140000")
        self.initial = self.stored()
        self.ran: set[str] = set()
        self.web = stack.procfile_process("web", self.env, self.logdir).start()
        self.worker = (
            None if one_dyno else stack.procfile_process("worker", self.env, self.logdir).start()
        )
        wait_for(self._web_up, timeout=60, what="the web process")
        self.monitor = Monitor(self.pg)
        self.monitor.start()
        paths = ["/token.json"]
        for slugs in self.slugs.values():
            for slug in slugs:
                paths += [f"/token/{slug}.json", f"/token/{slug}.js", f"/token/{slug}"]
        self.load = stack.Load(port=self.web_port, paths=paths, rate=LOAD_RATE, connections=12)
        self.load.phase = "warm-up"
        self.load.start()
        time.sleep(3)
        # Beat's first ticks also sync every account's feed (mirroring its pictures);
        # the drills start once those first syncs have run, so that a drill's refreshes
        # are not queued behind the whole stack's first feed syncs.
        accounts = sum(len(slugs) for slugs in self.slugs.values())
        wait_for(
            lambda: self._feeds_attempted() >= accounts,
            timeout=240,
            interval=1,
            what="every account's first feed sync",
        )
        if one_dyno:  # each feed now has a snapshot to serve (before: 503 by design)
            self.load.paths.extend(
                f"/feed/{slug}.json" for slugs in self.slugs.values() for slug in slugs
            )

    def _feeds_attempted(self) -> int:
        with self.pg.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM accounts_feedsnapshot WHERE attempted_at IS NOT NULL"
            ).fetchone()
        return int(row[0]) if row else 0

    def _web_up(self) -> bool:
        if not self.web.running():
            raise StackError(f"web exited:\n{self.web.tail()}")
        return stack.web_answers(self.web_port, "/token.json")

    def stored(self) -> dict:
        return json.loads(stack.django_run(self.env, "-c", STORED).strip().splitlines()[-1])

    def versions(self) -> dict[str, int]:
        with self.pg.connect() as conn:
            rows = conn.execute(
                "SELECT a.slug, t.version FROM accounts_accesstoken t "
                "JOIN accounts_instagramaccount a ON a.id = t.account_id"
            ).fetchall()
        return dict(rows)

    def make_due(self, batch: str) -> None:
        """As if eight days had passed for this batch: beat's next tick queues them."""
        self.ran.add(batch)
        with self.pg.connect() as conn:
            conn.execute(
                "UPDATE accounts_accesstoken SET issued_at = now() - interval '8 days', "
                "refreshed_at = NULL WHERE account_id IN "
                "(SELECT id FROM accounts_instagramaccount WHERE slug LIKE %s)",
                (f"{batch}-%",),
            )

    def drop_served_copies(self, batch: str) -> int:
        """Delete the batch's served entries from Redis (Django's cache keys). With the
        cache in the database, every entry is out of reach already."""
        if self.redis is None:
            return 0
        import redis

        client = redis.Redis(host=HOST, port=self.redis.port)
        keys = list(client.scan_iter(match=f"*token:slug:{batch}-*"))
        return client.delete(*keys) if keys else 0

    def refreshed(self, batch: str) -> bool:
        try:
            versions = self.versions()
        except Exception:  # noqa: BLE001 (PostgreSQL may still be coming back)
            return False
        return all(versions[s] > self.initial[s]["version"] for s in self.slugs[batch])

    def wait_refreshed(self, batch: str) -> float:
        started = time.monotonic()
        wait_for(
            lambda: self.refreshed(batch),
            timeout=RECOVERY_TIMEOUT,
            interval=0.5,
            what=f"batch {batch} to be refreshed (worker errors:\n{self.worker_errors()})",
        )
        return time.monotonic() - started

    def wait_refresh_in_flight(self, calls_before: int) -> None:
        wait_for(
            lambda: self.instagram.refresh_calls() > calls_before,
            timeout=30,
            interval=0.1,
            what="a refresh call to reach Instagram",
        )

    def worker_errors(self) -> str:
        return (self.worker or self.web).errors()

    def embedded_worker(self) -> int | None:
        """The Celery worker's main process inside the one dyno: the celery process
        whose parent (the launcher) is not one (its pool processes and beat are)."""
        assert self.web.pid is not None

        def celery(pid: int) -> bool:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                return False
            return any(a.endswith(b"/celery") for a in argv[:2])

        for pid in process_tree(self.web.pid):
            try:
                parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if celery(pid) and not celery(parent):
                return pid
        return None

    def kill_worker(self) -> None:
        """SIGKILL the worker with its pool processes and beat, as a crash would."""
        if self.worker is not None:
            self.worker.kill()
            return
        main = wait_for(self.embedded_worker, timeout=10, what="the embedded worker")
        self.killed_worker = main
        for pid in process_tree(main):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start_worker(self) -> None:
        """Start the killed worker again: the dyno's launcher does it by itself."""
        if self.worker is not None:
            self.worker.start()
            return
        wait_for(
            lambda: self.embedded_worker() not in (None, self.killed_worker),
            timeout=30,
            what="the launcher to start the worker again",
        )

    def phase_counts(self, phase: str) -> Counter:
        return self.load.total(phase)

    def close(self) -> None:
        """Stop everything, even when one step fails; then report the failures."""
        failures = []
        steps: list[Callable[[], object]] = [
            self.load.stop,
            self.monitor.stop,
            self.web.stop,
            self.instagram.close,
        ]
        steps += [self.worker.stop] if self.worker else []
        steps += [self.redis.stop] if self.redis else []
        for step in [*steps, self.pg.stop]:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 (tear everything down regardless)
                failures.append(f"{step.__qualname__}: {exc}")
        if failures:
            raise StackError("teardown failed: " + "; ".join(failures))


@pytest.fixture(scope="module")
def drill(tmp_path_factory, request):
    _require(bool(shutil.which("redis-server")), "redis-server (apt-get install redis-server)")
    _require(
        stack.postgres_bindir() is not None, "PostgreSQL's initdb (apt-get install postgresql)"
    )
    _require(
        os.geteuid() != 0 or shutil.which("runuser") is not None, "runuser to run postgres as root"
    )
    yield from run_drill(tmp_path_factory, request, one_dyno=False)


def run_drill(tmp_path_factory, request, *, one_dyno: bool):
    workdir = tmp_path_factory.mktemp("drill")
    d = Drill(workdir, one_dyno=one_dyno)
    yield d
    d.close()
    (workdir / "report.json").write_text(json.dumps(d.report, indent=2, default=str))
    title = "the one-dyno formation; token and feed" if one_dyno else "token"
    _print_report(request.config, d.report, title)


def _record(phase: str, drill: Drill, **extra) -> Counter:
    counts = drill.phase_counts(phase)
    drill.report[phase] = {
        "requests": sum(counts.values()),
        "5xx": stack.Load.server_errors(counts),
        "errors": counts.get("error", 0),
        "statuses": dict(sorted((str(k), v) for k, v in counts.items())),
        **extra,
    }
    return counts


def _print_report(config, report: dict, title: str) -> None:
    """Onto the terminal (also without ``-s``) and into a JSON file beside the logs."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    lines = [f"FAULT DRILL REPORT ({title} endpoints; 5xx and connection errors per drill)"]
    lines += [f"  {phase}: {json.dumps(row, default=str)}" for phase, row in report.items()]
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


def _assert_no_5xx(counts: Counter, phase: str, drill: Drill) -> None:
    assert stack.Load.server_errors(counts) == 0, (
        f"token endpoints answered 5xx during {phase}: {dict(counts)}\nweb log:\n{drill.web.tail()}"
    )
    assert counts.get("error", 0) == 0, (
        f"connection errors during {phase}: {drill.load.error_kinds}"
    )
    assert counts.get(200, 0) > 0


def test_a_redis_stopped_and_restarted(drill):
    drill.instagram.slow_refresh(1.5)  # refreshes straddle the outage
    calls = drill.instagram.refresh_calls()
    drill.load.phase = "a"
    drill.make_due("a")
    drill.wait_refresh_in_flight(calls)
    drill.redis.stop()
    time.sleep(6)
    drill.redis.start()
    drill.instagram.slow_refresh(0)
    recovered = drill.wait_refreshed("a")
    drill.load.phase = "after-a"
    counts = _record("a", drill, outage_s=6, refreshed_after_restart_s=round(recovered, 1))
    _assert_no_5xx(counts, "(a) the Redis outage", drill)


def test_b_worker_killed_mid_refresh_and_restarted(drill):
    drill.instagram.slow_refresh(5)  # the refresh hangs in Instagram's hands
    calls = drill.instagram.refresh_calls()
    before = drill.versions()
    drill.load.phase = "b"
    drill.make_due("b")
    drill.wait_refresh_in_flight(calls)
    time.sleep(1)
    drill.kill_worker()
    # Nothing was half-written: every token of the batch is the one it had.
    after_kill = drill.versions()
    assert {s: after_kill[s] for s in drill.slugs["b"]} == {s: before[s] for s in drill.slugs["b"]}
    time.sleep(2)
    drill.instagram.slow_refresh(0)
    drill.start_worker()
    recovered = drill.wait_refreshed("b")
    drill.load.phase = "after-b"
    counts = _record("b", drill, refreshed_after_restart_s=round(recovered, 1))
    _assert_no_5xx(counts, "(b) the worker kill", drill)


def test_c_instagram_fails_every_call_for_a_while(drill):
    calls = drill.instagram.refresh_calls()
    drill.load.phase = "c"
    drill.instagram.fail_everything(True)
    drill.make_due("c")
    wait_for(
        lambda: drill.instagram.refresh_calls() >= calls + PER_BATCH,
        timeout=30,
        what="failing refresh calls",
    )
    time.sleep(8)
    failed_calls = drill.instagram.refresh_calls() - calls
    drill.instagram.fail_everything(False)
    recovered = drill.wait_refreshed("c")
    drill.load.phase = "after-c"
    counts = _record(
        "c", drill, failed_refresh_calls=failed_calls, refreshed_after_s=round(recovered, 1)
    )
    _assert_no_5xx(counts, "(c) the Instagram outage", drill)


def test_d_postgres_restarts(drill):
    """PostgreSQL goes down for a few seconds and comes back. Meanwhile the d
    accounts' served copies are dropped from the cache (as happens to every entry
    each ENTRY_TTL, or on any invalidation), so their requests must reach the
    database while it is down: the 5xx they get is the figure reported."""
    drill.load.phase = "d"
    drill.make_due("d")
    time.sleep(2)  # requests sent before this phase are answered before the outage
    drill.pg.down()
    dropped = drill.drop_served_copies("d")
    time.sleep(5)
    drill.pg.up()
    recovered = drill.wait_refreshed("d")
    time.sleep(2)
    drill.load.phase = "after-d"
    counts = _record(
        "d",
        drill,
        outage_s=5,
        cache_entries_dropped=dropped,
        refreshed_after_restart_s=round(recovered, 1),
    )
    # Reported, not required (see the module docstring). The other accounts, still
    # in the cache, were served throughout.
    assert counts.get(200, 0) > 0


def test_afterwards_every_account_holds_a_working_token_and_none_went_back(drill):
    time.sleep(2 * TICK)
    drill.load.phase = "end"
    drill.load.stop()
    drill.monitor.stop()
    stored = drill.stored()
    for slug, row in stored.items():
        status, body = stack.http_get(drill.web_port, f"/token/{slug}.json")
        assert status == 200, (slug, body[:200])
        token = json.loads(body)["token"]
        assert drill.instagram.accepts(token), f"{slug}: Instagram refuses the served token"
        assert hashlib.sha256(token.encode()).hexdigest() == row["sha"], slug
        assert row["status"] == "active", (slug, row["status"])
        initial = drill.initial[slug]["version"]
        if slug.split("-")[0] in drill.ran:
            assert row["version"] > initial, f"{slug} was due and was never refreshed"
        else:
            assert row["version"] == initial, f"{slug} was not due and was refreshed"
    assert drill.monitor.samples >= 20
    assert drill.monitor.violations == []
    # Between the drills nothing is broken: no 5xx there either ((d) and the moments
    # right after the database came back are reported, not required).
    calm = {p: c for p, c in drill.load.counts.items() if p not in ("d", "after-d")}
    assert {p: stack.Load.server_errors(c) for p, c in calm.items()} == dict.fromkeys(calm, 0)
    total = drill.load.total()
    drill.report["all"] = {
        "requests": sum(total.values()),
        "5xx": stack.Load.server_errors(total),
        "errors": total.get("error", 0),
        "accounts": len(stored),
        "refreshed": sum(
            1 for s, r in stored.items() if r["version"] > drill.initial[s]["version"]
        ),
        "monitor_samples": drill.monitor.samples,
        "monitor_failed_reads": drill.monitor.failed_reads,
        "went_back": len(drill.monitor.violations),
        "5xx_by_phase": {
            phase: stack.Load.server_errors(counts) for phase, counts in drill.load.counts.items()
        },
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
