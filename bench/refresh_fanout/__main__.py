"""Refresh fan-out benchmark: ``python -m bench.refresh_fanout`` (``make bench-refresh``).

Seeds N accounts (default 10,000) with due sandbox tokens in a dedicated PostgreSQL
database, starts a private redis-server, the sandbox Instagram in its own process
(``manage.py sandbox_server``) answering each refresh after ``--delay`` (100 ms),
and ONE Celery worker with embedded
beat, as ``celery -A tokenagent worker --beat ...`` runs on a dyno, with the
production settings module configured by environment variables (default: the
threads pool, 8 tasks at once). The worker's start-up tick fans out one task per
batch of ``--batch-size`` accounts (REFRESH_BATCH_SIZE), each asking Instagram on
``--batch-threads`` threads (REFRESH_BATCH_THREADS); ``--batch-size 1`` is the
old fan-out, one task per account. The benchmark waits until every token is
refreshed and prints accounts per second (and as a ratio to the ceiling the
threads allow: tasks at once x Instagram calls at once per task / delay), the
total time, the CPU time the worker and the sandbox spent per refresh, and the
worker's peak RSS (the sum over its process tree: main process, pool, beat),
sampled from /proc. Target (issue 14): all 10,000 in under 60 s, peak RSS < 250 MB.

Every account's feed is seeded as just synced, so the tick queues refreshes only;
``--feeds due`` leaves them never synced, and the tick then also fans out one feed
sync per account (queued after the refreshes, mirroring the sandbox's pictures),
as a first deploy of 10,000 accounts would.

Not a test: it takes a minute or two and the machine's full attention.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.processes import PrivateRedis, cpu_seconds, process_tree, wait_for  # noqa: E402
from harness.procfile_stack import Sandbox  # noqa: E402
from harness.refresh import agent_env, worker_process  # noqa: E402

# Throwaway keys for a throwaway database; the sandbox signs its tokens with the
# first, so the benchmark can mint 10,000 valid ones without 10,000 round trips.
SANDBOX_SIGNING_KEY = "bench-refresh-fanout-sandbox-signing-key"  # noqa: S105
SECRET_KEY = "bench-refresh-fanout-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105


def process_tree_rss_kb(root_pid: int) -> int:
    """VmRSS of ``root_pid`` and all its descendants, in kB, from /proc."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.peak_kb = max(self.peak_kb, process_tree_rss_kb(self.pid))
            self.stop_event.wait(self.interval)


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL does not answer at {admin.rsplit('@', 1)[-1]}: start it, or point "
            f"BENCH_DATABASE_URL (or --database-url) at a server you may create a database on "
            f"({exc})"
        ) from None
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(count: int, *, feeds_due: bool) -> None:
    """Bulk-create ``count`` accounts whose sandbox tokens are 8 days old (due weekly),
    minted exactly as the sandbox mints them, and (unless ``feeds_due``) an empty
    feed snapshot synced just now for each."""
    from django.utils import timezone

    from accounts import crypto
    from accounts.models import (
        AccessToken,
        FeedImage,
        FeedSnapshot,
        InstagramAccount,
        RefreshAttempt,
        RefresherHeartbeat,
    )
    from accounts.sandbox import tokens as sandbox_tokens

    RefreshAttempt.objects.all().delete()
    RefresherHeartbeat.objects.all().delete()
    AccessToken.objects.all().delete()
    InstagramAccount.objects.all().delete()  # and their snapshots and picture uses
    FeedImage.objects.all().delete()  # pictures a --feeds due run mirrored
    now = timezone.now()
    accounts = InstagramAccount.objects.bulk_create(
        [
            InstagramAccount(
                slug=f"bench-{i:05d}",
                ig_user_id=f"1784140{i:010d}",
                app_scoped_id=f"9876{i:012d}",
                username=f"bench_{i:05d}",
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    AccessToken.objects.bulk_create(
        [
            AccessToken(
                account=account,
                ciphertext=crypto.encrypt(
                    sandbox_tokens.mint(
                        username=account.username,
                        issued_at=(now - timedelta(days=8)).timestamp(),
                        lifetime=60 * 86400,
                    )
                ),
                issued_at=now - timedelta(days=8),
                expires_at=now + timedelta(days=52),
                permissions=["instagram_business_basic"],
            )
            for account in accounts
        ],
        batch_size=2000,
    )
    if not feeds_due:
        FeedSnapshot.objects.bulk_create(
            [FeedSnapshot(account=a, synced_at=now, attempted_at=now) for a in accounts],
            batch_size=2000,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.1, help="Instagram's answer time (s)")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks at once")
    parser.add_argument("--batch-size", type=int, default=32, help="REFRESH_BATCH_SIZE")
    parser.add_argument("--batch-threads", type=int, default=16, help="REFRESH_BATCH_THREADS")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tokenagent_bench_refresh"
        ),
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--feeds",
        choices=["fresh", "due"],
        default="fresh",
        help="fresh: feeds just synced, the tick queues refreshes only; due: never "
        "synced, the tick also queues one feed sync per account (after the refreshes)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    var_dir = workdir / "var"
    var_dir.mkdir()
    redis = PrivateRedis(workdir, start_timeout=10).start()
    instagram = Sandbox(
        workdir,
        start_timeout=30,
        SECRET_KEY=SECRET_KEY,
        SANDBOX_SIGNING_KEY=SANDBOX_SIGNING_KEY,
        LOG_LEVEL="WARNING",
    )
    sandbox = instagram.control
    sandbox.delay("refresh", args.delay)
    env = agent_env(
        database_url=args.database_url,
        redis_url=redis.url,
        instagram_url=sandbox.base_url,
        var_dir=var_dir,
        secret_key=SECRET_KEY,
        token_encryption_key="",
        # Only the start-up tick runs during the measurement.
        REFRESH_TICK_SECONDS=3600,
        CONN_MAX_AGE=600,
        LOG_LEVEL="WARNING",
        REFRESH_BATCH_SIZE=str(args.batch_size),
        REFRESH_BATCH_THREADS=str(args.batch_threads),
    )
    os.environ.update(env, SANDBOX_SIGNING_KEY=SANDBOX_SIGNING_KEY)
    worker = None
    try:
        ensure_database(args.database_url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        from django.db import connection

        from accounts.models import AccessToken, RefreshAttempt, RefresherHeartbeat

        started = time.monotonic()
        seed(args.accounts, feeds_due=args.feeds == "due")
        print(f"seeded {args.accounts} accounts in {time.monotonic() - started:.1f}s", flush=True)
        connection.close()

        worker = worker_process(
            env,
            workdir,
            "--pool",
            args.pool,
            "--concurrency",
            str(args.concurrency),
            "--loglevel",
            "WARNING",
        )
        launched = time.monotonic()
        worker_pid = worker.start().pid
        assert worker_pid is not None
        sandbox_pid = instagram.process.pid or 0
        sandbox_cpu0 = cpu_seconds(sandbox_pid)
        sampler = RssSampler(worker_pid)
        sampler.start()
        first_tick = wait_for(
            lambda: RefresherHeartbeat.objects.exists() and time.monotonic(),
            timeout=120,
            what="the worker's start-up tick",
        )
        done_at = None
        last_report = 0.0
        while time.monotonic() - launched < args.timeout:
            refreshed = AccessToken.objects.filter(version__gte=2).count()
            now = time.monotonic()
            if refreshed >= args.accounts:
                done_at = now
                break
            if not worker.running():
                print(worker.log()[-3000:])
                raise SystemExit("the worker died")
            if now - last_report >= 10:
                print(
                    f"  {now - launched:6.1f}s  refreshed {refreshed:6d}  "
                    f"worker RSS {process_tree_rss_kb(worker_pid) / 1024:6.1f} MB",
                    flush=True,
                )
                last_report = now
            time.sleep(0.25)
        worker_cpu, sandbox_cpu = cpu_seconds(worker_pid), cpu_seconds(sandbox_pid) - sandbox_cpu0
        sampler.stop_event.set()
        sampler.join()
        refreshed = AccessToken.objects.filter(version__gte=2).count()
        failures = RefreshAttempt.objects.exclude(outcome="success").count()
        total = (done_at or time.monotonic()) - launched
        from_tick = (done_at or time.monotonic()) - first_tick
        peak_mb = sampler.peak_kb / 1024
        print()
        print(
            f"worker: celery -A tokenagent worker --beat --pool {args.pool} "
            f"--concurrency {args.concurrency}  "
            f"(Instagram answers after {args.delay * 1000:.0f} ms; batches of "
            f"{args.batch_size} on {args.batch_threads} threads)"
        )
        print(f"accounts refreshed : {refreshed} / {args.accounts}  (other attempts: {failures})")
        print(f"total time         : {total:.1f} s from worker launch, {from_tick:.1f} s from tick")
        at_once = args.concurrency * min(args.batch_size, args.batch_threads)
        ceiling = at_once / args.delay if args.delay > 0 else float("inf")
        print(
            f"throughput         : {refreshed / from_tick:.1f} accounts/s "
            f"({refreshed / from_tick / ceiling:.2f} of the threads' ceiling, {ceiling:.0f}/s)"
        )
        per = 1000 / max(1, refreshed)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"CPU per refresh    : worker {worker_cpu * per:.1f} ms "
            f"(from launch, start-up included), sandbox {sandbox_cpu * per:.1f} ms; "
            f"on {os.cpu_count()} CPUs, load average {load}"
        )
        print(f"worker peak RSS    : {peak_mb:.1f} MB (process tree: main, pool, beat)")
        ok = refreshed == args.accounts and total < 60 and peak_mb < 250
        print(f"target (<60 s, <250 MB): {'MET' if ok else 'MISSED'}")
        return 0 if ok else 1
    finally:
        if worker is not None:
            worker.stop()
        instagram.close()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
