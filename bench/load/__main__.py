"""Load figure: ``make bench-load`` or ``python -m bench.load [--help]``.

Runs the agent as Heroku does, on services of its own: the Procfile's ``web``
line (gunicorn with ``--preload``, ``WEB_CONCURRENCY=2`` like a basic dyno, no
access log: app.json keeps the buildpack's out) and ``worker`` line
(Celery with embedded beat), DEBUG off, on a private PostgreSQL and a private
Redis, with the sandbox Instagram standing in for Instagram. Seeds accounts with
sandbox-minted tokens; while the load runs, one account after another becomes
due, so beat is refreshing throughout.

Then it holds a steady open-loop rate on the token endpoints (``.json``, ``.js``
and plain text, every account, plus the default ``/token.json``) for the given
duration over keep-alive connections, after a short warm-up, and prints: requests
served, errors, p50/p99 latency (measured from each request's due time, so
stalls are not hidden), refreshes done by beat meanwhile, and the peak memory of
the web and worker process trees (RSS summed over processes, which counts pages
shared after fork once per process, and PSS, which splits them: what the dyno's
memory accounting sees). Exits 1 when a target is missed.

Targets (issue 7): 1,000 requests/s for 60 s with zero errors and p99 < 50 ms;
web < 150 MB, worker < 200 MB.

``--formation one-dyno`` runs the one-dyno formation instead (issue 15): the ``web``
line alone (scripts/dyno.py: the web server and the worker with beat in one
process tree), no Redis (the cache in PostgreSQL, the broker in the dyno's
folder); the memory figure is the whole dyno's, target < 400 MB of a basic dyno's
512 MB. ``--fanout N`` seeds N more accounts and makes them all due at once when
the measured run starts, once every account's first feed sync has run (Instagram
answering refreshes after 100 ms), so the worker fans out N refreshes under the
load; memory is sampled from the first syncs on.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import procfile_stack as stack
from harness.processes import PrivateRedis, StackError, free_port, wait_for

TARGET_RATE = 1000.0
TARGET_DURATION = 60.0
TARGET_P99_MS = 50.0
TARGET_WEB_MB = 150.0
TARGET_WORKER_MB = 200.0
TARGET_DYNO_MB = 400.0  # the one-dyno formation, of a basic dyno's 512 MB


def _mb(kb: int) -> float:
    return kb / 1024


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Aging(threading.Thread):
    """Makes one account due every ``every`` seconds (as if eight days had passed
    for it), so beat keeps refreshing while the load runs."""

    def __init__(self, pg: stack.PrivatePostgres, slugs: list[str], every: float) -> None:
        super().__init__(daemon=True)
        self.pg, self.slugs, self.every = pg, list(slugs), every
        self.made_due: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with self.pg.connect() as conn:
            while self.slugs and not self._halt.wait(self.every):
                slug = self.slugs.pop(0)
                conn.execute(
                    "UPDATE accounts_accesstoken SET issued_at = now() - interval '8 days', "
                    "refreshed_at = NULL WHERE account_id = "
                    "(SELECT id FROM accounts_instagramaccount WHERE slug = %s)",
                    (slug,),
                )
                self.made_due.append(slug)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def make_due(pg: stack.PrivatePostgres, pattern: str) -> None:
    with pg.connect() as conn:
        conn.execute(
            "UPDATE accounts_accesstoken SET issued_at = now() - interval '8 days', "
            "refreshed_at = NULL WHERE account_id IN "
            "(SELECT id FROM accounts_instagramaccount WHERE slug LIKE %s)",
            (pattern,),
        )


def first_syncs(pg: stack.PrivatePostgres) -> int:
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM accounts_feedsnapshot WHERE attempted_at IS NOT NULL"
        ).fetchone()
    return int(row[0]) if row else 0


def refreshes_since(pg: stack.PrivatePostgres, since: float) -> dict[str, int]:
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT outcome, count(*) FROM accounts_refreshattempt "
            "WHERE started_at >= to_timestamp(%s) GROUP BY outcome",
            (since,),
        ).fetchall()
    return {outcome: n for outcome, n in rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s offered")
    parser.add_argument("--duration", type=float, default=TARGET_DURATION, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load not measured")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--accounts", type=int, default=20, help="accounts seeded")
    parser.add_argument(
        "--refresh-every", type=float, default=3.0, help="seconds between accounts becoming due"
    )
    parser.add_argument(
        "--formation",
        choices=["web+worker", "one-dyno"],
        default="web+worker",
        help="web and worker dynos with Redis, or the one dyno without",
    )
    parser.add_argument(
        "--fanout", type=int, default=0, help="accounts made due at once as the run starts"
    )
    parser.add_argument(
        "--fanout-wait", type=float, default=120, help="seconds to wait for the fan-out after"
    )
    parser.add_argument(
        "--feed-posts", type=int, default=50, help="FEED_MAX_POSTS: posts mirrored per account"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    logdir = workdir / "logs"
    logdir.mkdir()
    redis = pg = sandbox = web = worker = None
    started = time.monotonic()
    one_dyno = args.formation == "one-dyno"
    try:
        redis = None if one_dyno else PrivateRedis(workdir).start()
        pg = stack.PrivatePostgres().start()
        sandbox = stack.Sandbox(workdir)
        port = free_port()
        var_dir = workdir / "var"
        var_dir.mkdir()
        env = stack.agent_env(
            database_url=pg.url,
            redis_url=redis.url if redis else "",
            var_dir=var_dir,
            instagram_url=sandbox.base_url,
            secret_key=secrets.token_urlsafe(50),
            port=port,
            REFRESH_TICK_SECONDS=2,
            LOG_LEVEL="WARNING",
            EMBEDDED_WORKER=one_dyno,
            FEED_MAX_POSTS=args.feed_posts,
        )
        stack.django_run(env, "manage.py", "migrate", "--noinput", "-v", "0")
        slugs = [f"load-{i}" for i in range(1, args.accounts + 1)]
        tokens = {s: sandbox.mint(s.replace("-", "_")) for s in slugs}
        fanned = [f"fan-{i}" for i in range(1, args.fanout + 1)]
        tokens.update({s: sandbox.mint(s.replace("-", "_")) for s in fanned})
        stack.seed_accounts(env, tokens, ig_user_id_prefix="1784150000")
        web = stack.procfile_process("web", env, logdir).start()
        worker = None if one_dyno else stack.procfile_process("worker", env, logdir).start()
        wait_for(lambda: stack.web_answers(port, "/token.json"), timeout=90, what="the web process")
        paths = ["/token.json"] + [
            f"/token/{s}{suffix}" for s in slugs for suffix in (".json", ".js", "")
        ]
        for path in paths:
            status, _ = stack.http_get(port, path)
            if status != 200:
                raise StackError(f"{path} answered {status} before the run")

        procfile = stack.procfile_lines()
        print(f"bench/load on {os.cpu_count()} CPUs, load average {_load_average()}")
        print(f"  web:    {procfile['web']}")
        print(f"  worker: {procfile['worker']}{' (inside web)' if one_dyno else ''}")
        services = "PostgreSQL alone (cache in it)" if one_dyno else "PostgreSQL + Redis"
        print(
            f"  {args.formation}, WEB_CONCURRENCY=2, private {services}, sandbox Instagram, "
            f"{len(slugs)} accounts, {len(paths)} token URLs, fan-out {len(fanned)}, "
            f"{args.feed_posts} posts per feed"
        )

        warm = stack.Load(
            port=port,
            paths=paths,
            rate=args.rate,
            connections=args.connections,
            duration=args.warmup,
        ).start()
        warm.wait()

        groups = {"dyno": web} if worker is None else {"web": web, "worker": worker}
        memory = stack.MemorySampler(groups).start()
        if fanned:
            # Beat's first ticks sync every account's feed (pictures mirrored); the
            # fan-out starts after them, as the fault drills do, or its refreshes
            # would only queue behind them. Memory is sampled from here on.
            wait_for(
                lambda: first_syncs(pg) >= len(tokens),
                timeout=args.fanout_wait * 4,
                interval=1,
                what="every account's first feed sync",
            )
        aging = Aging(pg, slugs, args.refresh_every)
        since = time.time()
        load = stack.Load(
            port=port,
            paths=paths,
            rate=args.rate,
            connections=args.connections,
            duration=args.duration,
        )
        load.phase = "measured"
        cpu_before = time.process_time()
        if fanned:
            sandbox.slow_refresh(0.1)
            make_due(pg, "fan-%")
        load.start()
        aging.start()
        load.wait()
        client_cpu = time.process_time() - cpu_before
        aging.stop()
        time.sleep(3)  # let the last due account finish
        if fanned:  # the fan-out's last refreshes (behind first feed syncs), still sampled
            try:
                wait_for(
                    lambda: (
                        refreshes_since(pg, since).get("success", 0)
                        >= len(fanned) + len(aging.made_due)
                    ),
                    timeout=args.fanout_wait,
                    interval=1,
                    what="the fan-out's refreshes",
                )
            except StackError:
                pass  # reported below: how many were done while memory was sampled
        memory.stop()
        refreshes = refreshes_since(pg, since)

        counts = load.total("measured")
        served = sum(v for k, v in counts.items() if isinstance(k, int))
        bad = sum(v for k, v in counts.items() if not (isinstance(k, int) and k in (200, 304)))
        elapsed = load.stopped_at - load.started_at
        p50, p99 = load.percentile_ms(0.50), load.percentile_ms(0.99)
        web_rss, web_pss = _mb(memory.peak_rss["web"]), _mb(memory.peak_pss["web"])
        wk_rss, wk_pss = _mb(memory.peak_rss["worker"]), _mb(memory.peak_pss["worker"])
        dyno_rss, dyno_pss = _mb(memory.peak_rss["dyno"]), _mb(memory.peak_pss["dyno"])

        print()
        print(
            f"offered {args.rate:.0f} req/s for {args.duration:.0f} s "
            f"over {args.connections} keep-alive connections"
        )
        print(f"  requests served: {served} ({served / elapsed:.0f} req/s achieved)")
        print(
            f"  errors: {bad} (statuses {dict(sorted((str(k), v) for k, v in counts.items()))}, "
            f"connection errors {dict(load.error_kinds)})"
        )
        print(
            f"  latency from due time: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {load.percentile_ms(1.0):.1f} ms"
        )
        print(
            f"  beat refreshed {refreshes.get('success', 0)} account(s) during the run "
            f"({len(aging.made_due)} made due one by one, {len(fanned)} at once; "
            f"outcomes {refreshes})"
        )
        if one_dyno:
            print(
                f"  peak memory of the dyno: RSS {dyno_rss:.0f} MB, PSS {dyno_pss:.0f} MB "
                "(launcher, web server and worker: the whole process tree)"
            )
        else:
            print(
                f"  peak memory web:    RSS {web_rss:.0f} MB, PSS {web_pss:.0f} MB (process tree)"
            )
            print(f"  peak memory worker: RSS {wk_rss:.0f} MB, PSS {wk_pss:.0f} MB (process tree)")
        print(
            f"  load generator's own CPU: {100 * client_cpu / elapsed:.0f}% of one core; "
            f"load average after: {_load_average()}"
        )

        checks = [
            (
                f"{TARGET_RATE:.0f} req/s for {TARGET_DURATION:.0f} s",
                args.rate >= TARGET_RATE
                and args.duration >= TARGET_DURATION
                and served >= 0.99 * args.rate * args.duration
                and served / elapsed >= 0.99 * args.rate,
            ),
            ("zero errors", bad == 0),
            (f"p99 < {TARGET_P99_MS:.0f} ms", p99 < TARGET_P99_MS),
            ("beat refreshed during the run", refreshes.get("success", 0) > 0),
        ]
        if one_dyno:
            checks.append((f"dyno < {TARGET_DYNO_MB:.0f} MB (PSS)", dyno_pss < TARGET_DYNO_MB))
        else:
            checks.append((f"web < {TARGET_WEB_MB:.0f} MB (PSS)", web_pss < TARGET_WEB_MB))
            checks.append((f"worker < {TARGET_WORKER_MB:.0f} MB (PSS)", wk_pss < TARGET_WORKER_MB))
        print()
        for name, ok in checks:
            print(f"  target {name}: {'OK' if ok else 'MISSED'}")
        print(f"  (whole run {time.monotonic() - started:.0f} s)")
        return 0 if all(ok for _, ok in checks) else 1
    finally:
        for service in (web, worker, sandbox):
            if service is not None:
                (service.close if hasattr(service, "close") else service.stop)()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        if args.keep:
            print(f"logs kept in {logdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
