"""Feed sync benchmark: ``make bench-feed`` or ``python -m bench.feed [--help]``.

Runs the Procfile's ``worker`` line (Celery with embedded beat; DEBUG off, the
production settings module configured by environment variables) on a private
PostgreSQL and a private Redis, against the sandbox Instagram in its own process
answering every call (listing pages and CDN pictures) after ``--delay`` (100 ms).
Seeds ``--accounts`` (100) accounts whose sandbox feeds hold ``--posts`` (50)
posts, then runs three phases, each on a freshly started worker whose start-up
tick fans out the work:

1. baseline: beat refreshes every account's token (one call each);
2. first sync: beat reads every feed and mirrors all its pictures (download,
   decode, three widths, stored in PostgreSQL);
3. re-sync: every feed is due again; the pictures are reused.

For each phase it prints the wall time (first tick to the last account done), the
worker's CPU time, and its peak memory (RSS and PSS summed over its process tree),
each beside the baseline as a ratio; the sandbox's own CPU time (it draws the
pictures on the same machine); and what the pictures take in the database.

Then the web side (bench/feed/web.py): the Procfile's ``web`` line serving
``/feed/<account>.json`` and a mirrored picture beside ``/token/<account>.json``,
req/s and p50/p99 as ratios to the token URL's. Not a test: it takes a few minutes
and the machine's attention. Needs redis-server, PostgreSQL's initdb/pg_ctl and wrk
(``make bench-feed`` installs them when missing).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.feed import web  # noqa: E402
from harness import procfile_stack as stack  # noqa: E402
from harness.processes import PrivateRedis, Process, cpu_seconds, free_port, wait_for  # noqa: E402

SIGNING_KEY = "bench-feed-sandbox-signing-key"  # noqa: S105 (throwaway, like its database)


@dataclass
class Phase:
    name: str
    seconds: float
    worker_cpu: float
    sandbox_cpu: float
    peak_rss_mb: float
    peak_pss_mb: float
    done: int


def _seed(count: int, posts: int, sandbox: stack.Sandbox) -> list[str]:
    """``count`` accounts with sandbox tokens issued 8 days ago (due for a weekly
    refresh), feeds of ``posts`` posts on the sandbox, and feed snapshots read a
    moment ago (not due: the baseline phase only refreshes)."""
    from django.utils import timezone

    from accounts import crypto
    from accounts.models import AccessToken, FeedSnapshot, InstagramAccount
    from accounts.sandbox import tokens as sandbox_tokens

    now = timezone.now()
    names = [f"feed_bench_{i:04d}" for i in range(count)]
    accounts = InstagramAccount.objects.bulk_create(
        [
            InstagramAccount(
                slug=name.replace("_", "-"),
                ig_user_id=sandbox_tokens.user_id_for(name),
                app_scoped_id=sandbox_tokens.app_scoped_id_for(name),
                username=name,
            )
            for name in names
        ]
    )
    issued = now - timedelta(days=8)
    AccessToken.objects.bulk_create(
        [
            AccessToken(
                account=a,
                ciphertext=crypto.encrypt(
                    sandbox_tokens.mint(
                        username=a.username, issued_at=issued.timestamp(), lifetime=60 * 86400
                    )
                ),
                issued_at=issued,
                expires_at=issued + timedelta(days=60),
                permissions=["instagram_business_basic"],
            )
            for a in accounts
        ]
    )
    FeedSnapshot.objects.bulk_create(
        [FeedSnapshot(account=a, synced_at=now, attempted_at=now) for a in accounts]
    )
    for name in names:
        sandbox.control.feed(username=name, count=posts)
    return names


def _run_phase(
    name: str, env: dict[str, str], logdir: Path, sandbox: stack.Sandbox, done, timeout: float
) -> Phase:
    """Start the Procfile's worker, wait for its start-up tick and until ``done()``
    counts every account, then stop it."""
    from django.db import connection

    from accounts.models import RefresherHeartbeat

    ticks = RefresherHeartbeat.objects.count()
    worker = stack.procfile_process("worker", env, logdir)
    worker.start()
    assert worker.pid is not None
    memory = stack.MemorySampler({"worker": worker}, interval=0.25).start()
    try:
        wait_for(
            lambda: RefresherHeartbeat.objects.count() > ticks or _dead(worker),
            timeout=120,
            what="the worker's start-up tick",
        )
        started = time.monotonic()
        cpu0, sandbox_cpu0 = cpu_seconds(worker.pid), cpu_seconds(sandbox.process.pid or 0)
        target = done(total=True)
        count = _wait_done(done, target, worker, stall=timeout, what=name)
        seconds = time.monotonic() - started
        cpu, sandbox_cpu = cpu_seconds(worker.pid), cpu_seconds(sandbox.process.pid or 0)
    finally:
        memory.stop()
        worker.stop()
        connection.close()
    return Phase(
        name=name,
        seconds=seconds,
        worker_cpu=cpu - cpu0,
        sandbox_cpu=sandbox_cpu - sandbox_cpu0,
        peak_rss_mb=memory.peak_rss["worker"] / 1024,
        peak_pss_mb=memory.peak_pss["worker"] / 1024,
        done=count,
    )


def _wait_done(done, target: int, worker: Process, *, stall: float, what: str) -> int:
    """Until ``done()`` reaches ``target``; gives up only when no account was done
    for ``stall`` seconds (a busy machine only makes a phase longer)."""
    last, changed = -1, time.monotonic()
    while (n := done()) < target:
        _dead(worker)
        if n != last:
            last, changed = n, time.monotonic()
        elif time.monotonic() - changed > stall:
            raise SystemExit(f"{what}: no account done for {stall:.0f} s ({n} of {target})")
        time.sleep(0.5)
    return n


def _dead(worker: Process) -> bool:
    if not worker.running():
        raise SystemExit(f"the worker exited:\n{worker.tail()}")
    return False


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cell(value: float, base: float, unit: str) -> str:
    return f"{value:.1f} {unit} (x{value / base:.2f})" if base else f"{value:.1f} {unit}"


def _print(phases: list[Phase]) -> None:
    base = phases[0]
    print()
    print(f"{'phase':<32}{'time':>20}{'worker CPU':>20}{'peak RSS':>20}{'peak PSS':>20}")
    for p in phases:
        cells = (
            _cell(p.seconds, base.seconds, "s"),
            _cell(p.worker_cpu, base.worker_cpu, "s"),
            _cell(p.peak_rss_mb, base.peak_rss_mb, "MB"),
            _cell(p.peak_pss_mb, base.peak_pss_mb, "MB"),
        )
        print(f"{p.name:<32}" + "".join(f"{c:>20}" for c in cells))
    for p in phases:
        print(
            f"  {p.name}: {p.done} accounts, {p.done / p.seconds:.2f} accounts/s, "
            f"{1000 * p.worker_cpu / max(1, p.done):.0f} ms worker CPU per account; "
            f"sandbox CPU {p.sandbox_cpu:.1f} s (drawing and serving its pictures)"
        )


def _storage(posts: int) -> None:
    from django.db.models import Count, Sum

    from accounts.models import FeedImage, FeedSnapshot

    totals = FeedImage.objects.aggregate(bytes=Sum("size"), renditions=Count("id"))
    feeds = FeedSnapshot.objects.exclude(synced_at=None).count()
    by_width = FeedImage.objects.values("width").annotate(n=Count("id"), bytes=Sum("size"))
    widest = ", ".join(
        f"{row['width']} px: {row['n']} x {row['bytes'] / max(1, row['n']) / 1024:.0f} kB"
        for row in sorted(by_width, key=lambda r: -r["n"])[:4]
    )
    per_feed = (totals["bytes"] or 0) / max(1, feeds)
    print(
        f"\nstorage: {totals['renditions']} renditions, {(totals['bytes'] or 0) / 1e6:.1f} MB for "
        f"{feeds} feeds: {per_feed / 1e6:.2f} MB per {posts} posts "
        f"({per_feed / max(1, posts) / 1024:.0f} kB a post); most common widths {widest}"
    )
    print(
        "  (the sandbox's pictures are drawn gradients and compress better than photos; "
        "a real photo takes about 0.5 MB in the three widths)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.feed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--posts", type=int, default=50, help="posts per feed (FEED_MAX_POSTS)")
    parser.add_argument("--delay", type=float, default=0.1, help="Instagram's answer time (s)")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds without an account done, at most"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    web.add_options(parser)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (make bench-feed installs it)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    logdir = workdir / "logs"
    logdir.mkdir()
    with ExitStack() as services:  # stopped in reverse order, whatever happens
        if args.keep:
            services.callback(print, f"logs kept in {logdir}")
        else:
            services.callback(shutil.rmtree, workdir, ignore_errors=True)
        redis = PrivateRedis(workdir).start()
        services.callback(redis.stop)
        pg = stack.PrivatePostgres().start()
        services.callback(pg.stop)
        sandbox = stack.Sandbox(workdir, SANDBOX_SIGNING_KEY=SIGNING_KEY, LOG_LEVEL="WARNING")
        services.callback(sandbox.close)
        (workdir / "var").mkdir()
        env = stack.agent_env(
            database_url=pg.url,
            redis_url=redis.url,
            var_dir=workdir / "var",
            instagram_url=sandbox.base_url,
            secret_key=secrets.token_urlsafe(50),
            port=free_port(),  # the web side's
            REFRESH_TICK_SECONDS=3600,  # only each worker's start-up tick
            FEED_MAX_POSTS=args.posts,
            LOG_LEVEL="WARNING",
        )
        stack.django_run(env, "manage.py", "migrate", "--noinput", "-v", "0")
        os.environ.update(env, SANDBOX_SIGNING_KEY=SIGNING_KEY)
        import django

        django.setup()
        from django.db.models import F
        from django.utils import timezone

        from accounts.models import AccessToken, FeedSnapshot

        _seed(args.accounts, args.posts, sandbox)
        sandbox.control.delay("*", args.delay)
        print(
            f"bench/feed: {args.accounts} accounts x {args.posts} posts, Instagram answering "
            f"after {args.delay * 1000:.0f} ms, on {os.cpu_count()} CPUs, load average "
            f"{_load_average()}"
        )
        print(f"  worker: {stack.procfile_lines()['worker']}")
        print(f"  web: {stack.procfile_lines()['web']}")

        def refreshed(total: bool = False) -> int:
            return args.accounts if total else AccessToken.objects.filter(version__gte=2).count()

        mark = timezone.now()

        def synced(total: bool = False) -> int:
            return (
                args.accounts
                if total
                else FeedSnapshot.objects.filter(synced_at__gt=mark, consecutive_failures=0).count()
            )

        phases = [
            _run_phase("baseline: token refresh", env, logdir, sandbox, refreshed, args.timeout)
        ]
        # Every feed due now, never read: the first sync mirrors every picture.
        FeedSnapshot.objects.update(synced_at=None, attempted_at=None)
        mark = timezone.now()
        phases.append(
            _run_phase("first sync (mirroring)", env, logdir, sandbox, synced, args.timeout)
        )
        _storage(args.posts)
        # Due again a period later: the pictures are reused.
        mark = timezone.now()
        FeedSnapshot.objects.update(
            synced_at=F("synced_at") - timedelta(hours=1),
            attempted_at=F("attempted_at") - timedelta(hours=1),
        )
        phases.append(
            _run_phase("re-sync (pictures reused)", env, logdir, sandbox, synced, args.timeout)
        )
        _print(phases)
        print(f"\nweb side (load average {_load_average()}):", flush=True)
        rows, peak_pss_mb = web.measure(env, logdir, slug="feed-bench-0000", args=args)
        web.report(rows, peak_pss_mb, args)
        print(f"\nload average at the end: {_load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
