"""Load figure: ``make bench-load`` or ``python -m bench.load [--help]``.

Runs the agent as Heroku does, on services of its own: the Procfile's ``web``
line (``WEB_CONCURRENCY=2`` like a basic dyno) and ``worker`` line (Celery with
embedded beat), DEBUG off, on a private PostgreSQL and a private Redis, with the
sandbox Instagram standing in for Instagram. Seeds accounts with sandbox-minted
tokens and waits for beat's first sync of every account's feed; while the load
runs, one account after another has its token made due and its feed made due, so
beat refreshes tokens and syncs feeds throughout.

The load is wrk (Debian's; C, so the client costs little of the machine) with
bench/load/rate.lua: a fixed request rate over keep-alive connections, rotating
through every token and feed URL of every account (``/token/<a>.json``, ``.js``,
plain text, ``/token.json``, ``/feed/<a>.json``, ``/feed/<a>/media``, and the
``.json`` ones again with a matching ``If-None-Match``: a 304). After a warm-up it
holds the rate for the given duration and prints: requests answered, the rate
achieved, errors (connection, read, write, timeout, and statuses >= 400),
latency percentiles (from each request's send), how late sends were against the
rate's schedule (when every connection is busy, a request waits: that lag is
what wrk's own latency leaves out), token refreshes and feed syncs beat did
meanwhile, and the peak memory of the web and worker process trees (PSS from
/proc/<pid>/smaps_rollup summed over each tree: what the dyno's memory
accounting sees; RSS counts shared pages once per process). Exits 1 when a
target is missed.

Targets (issue 14): 5,000 requests/s for 60 s with zero errors and p99 < 10 ms,
sends on schedule (lag p99 < 1 ms), web PSS < 150 MB; worker PSS < 200 MB
(issue 7); beat refreshed tokens and synced feeds during the run.

``--formation one-dyno`` runs the one-dyno formation instead (issue 15): the ``web``
line alone with ``EMBEDDED_WORKER=True`` (scripts/dyno.py: the web server and the
worker with beat in one process tree), no Redis (the cache in PostgreSQL, the
broker in the dyno's folder); the memory figure is the whole dyno's, target
< 400 MB of a basic dyno's 512 MB. ``--fanout N`` seeds N more accounts (not in
the rotation) and, once every account's first feed sync has run, makes them all
due at once as the measured run starts (Instagram answering refreshes after
100 ms), so the worker fans out N refreshes under the load; memory is then sampled
from the processes' start, first syncs included. ``--feed-posts`` sets
FEED_MAX_POSTS (posts mirrored per account).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import procfile_stack as stack
from harness.processes import HOST, PrivateRedis, StackError, free_port, wait_for

if TYPE_CHECKING:
    import psycopg

TARGET_RATE = 5000.0
TARGET_DURATION = 60.0
TARGET_P99_MS = 10.0
TARGET_LAG_P99_MS = 1.0
TARGET_WEB_MB = 150.0
TARGET_WORKER_MB = 200.0
TARGET_DYNO_MB = 400.0  # the one-dyno formation, of a basic dyno's 512 MB
SCRIPT = Path(__file__).with_name("rate.lua")


def _mb(kb: int) -> float:
    return kb / 1024


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Aging(threading.Thread):
    """Every ``every`` seconds makes one more account's token due (as if eight days
    had passed for it) and its feed due (as if synced a day ago), so beat keeps
    refreshing and syncing while the load runs."""

    def __init__(self, pg: stack.PrivatePostgres, slugs: list[str], every: float) -> None:
        super().__init__(daemon=True)
        self.pg, self.slugs, self.every = pg, list(slugs), every
        self.made_due: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with self.pg.connect() as conn:
            while self.slugs and not self._halt.wait(self.every):
                slug = self.slugs.pop(0)
                make_due(conn, [slug], feeds=True)
                self.made_due.append(slug)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def make_due(conn: psycopg.Connection, slugs: list[str], *, feeds: bool) -> None:
    """Makes these accounts' tokens due (as if eight days had passed for them) and,
    with ``feeds``, their feeds (as if synced a day ago)."""
    conn.execute(
        "UPDATE accounts_accesstoken SET issued_at = now() - interval '8 days', "
        "refreshed_at = NULL WHERE account_id IN "
        "(SELECT id FROM accounts_instagramaccount WHERE slug = ANY(%s))",
        (slugs,),
    )
    if feeds:
        conn.execute(
            "UPDATE accounts_feedsnapshot SET synced_at = synced_at - interval '1 day', "
            "attempted_at = attempted_at - interval '1 day' WHERE account_id IN "
            "(SELECT id FROM accounts_instagramaccount WHERE slug = ANY(%s))",
            (slugs,),
        )


def beat_work_since(pg: stack.PrivatePostgres, since: float) -> tuple[dict[str, int], int]:
    """(token refresh outcomes, feeds synced) since ``since`` (a Unix time)."""
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT outcome, count(*) FROM accounts_refreshattempt "
            "WHERE started_at >= to_timestamp(%s) GROUP BY outcome",
            (since,),
        ).fetchall()
        (synced,) = conn.execute(
            "SELECT count(*) FROM accounts_feedsnapshot WHERE synced_at >= to_timestamp(%s)",
            (since,),
        ).fetchall()[0]
    return {outcome: n for outcome, n in rows}, synced


def feeds_synced(pg: stack.PrivatePostgres) -> int:
    with pg.connect() as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM accounts_feedsnapshot WHERE synced_at IS NOT NULL"
        ).fetchall()[0]
        return int(count)


def request_lines(port: int, slugs: list[str], families: set[str]) -> list[str]:
    """The rotation: every URL form of ``families`` (token, feed), and a 304 for
    each ``.json`` (``path\\tETag``)."""
    paths = ["/token.json"] if "token" in families else []
    for slug in slugs:
        if "token" in families:
            paths += [f"/token/{slug}{suffix}" for suffix in (".json", ".js", "")]
        if "feed" in families:
            paths += [f"/feed/{slug}.json", f"/feed/{slug}/media"]
    lines = []
    for path in paths:
        status, headers = head_of(port, path)
        if status != 200:
            raise StackError(f"{path} answered {status} before the run")
        lines.append(path)
        if path.endswith(".json"):
            lines.append(f"{path}\t{headers['etag']}")
    return lines


def head_of(port: int, path: str) -> tuple[int, dict[str, str]]:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def wrk(
    port: int, requests_file: Path, *, rate: float, duration: float, threads: int, connections: int
) -> dict[str, float]:
    """wrk with rate.lua; the figures its done() printed (``load <name> <value>``)."""
    env = {
        **os.environ,
        "LOAD_RATE": str(rate),
        "LOAD_THREADS": str(threads),
        "LOAD_REQUESTS": str(requests_file),
    }
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:.0f}s",
        "--timeout",
        "2s",
        "-s",
        str(SCRIPT),
        f"http://{HOST}:{port}",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode:
        raise StackError(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    figures: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if not line.startswith("load "):
            continue
        words = line.split()[1:]
        if words[0] == "errors":
            for kind, value in zip(words[1::2], words[2::2], strict=True):
                figures[f"errors_{kind}"] = float(value)
        elif len(words) == 3:
            figures[f"{words[0]}_{words[1]}"] = float(words[2])
        else:
            figures[words[0]] = float(words[1])
    if "requests" not in figures:
        raise StackError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s offered")
    parser.add_argument("--duration", type=float, default=TARGET_DURATION, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load not measured")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--accounts", type=int, default=20, help="accounts seeded")
    parser.add_argument(
        "--refresh-every", type=float, default=3.0, help="seconds between accounts becoming due"
    )
    parser.add_argument(
        "--urls", default="token,feed", help="URL families in the rotation: token and/or feed"
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
    families = set(args.urls.split(","))
    if not families or families - {"token", "feed"}:
        raise SystemExit("--urls takes token, feed or token,feed")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

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
        fanned = [f"fan-{i}" for i in range(1, args.fanout + 1)]
        tokens = {s: sandbox.mint(s.replace("-", "_")) for s in slugs + fanned}
        stack.seed_accounts(env, tokens, ig_user_id_prefix="1784150000")
        web = stack.procfile_process("web", env, logdir).start()
        worker = None if one_dyno else stack.procfile_process("worker", env, logdir).start()
        groups = {"dyno": web} if worker is None else {"web": web, "worker": worker}
        # With a fan-out, memory is sampled from here: the first syncs of every
        # account's feed (pictures mirrored) are part of what the dyno goes through.
        memory = stack.MemorySampler(groups)
        if fanned:
            memory.start()
        wait_for(lambda: stack.web_answers(port, "/token.json"), timeout=90, what="the web process")
        wait_for(
            lambda: feeds_synced(pg) >= len(tokens),
            timeout=60 + 10 * len(tokens),
            what="every account's first feed sync",
        )
        requests_file = workdir / "requests.txt"
        lines = request_lines(port, slugs, families)
        requests_file.write_text("\n".join(lines) + "\n")

        procfile = stack.procfile_lines()
        print(f"bench/load on {os.cpu_count()} CPUs, load average {_load_average()}")
        print(f"  web:    {procfile['web']}")
        print(f"  worker: {procfile['worker']}{' (inside web)' if one_dyno else ''}")
        services = "PostgreSQL alone (cache in it)" if one_dyno else "PostgreSQL + Redis"
        print(
            f"  {f'{args.formation}, ' if one_dyno else ''}WEB_CONCURRENCY=2, private "
            f"{services}, sandbox Instagram, {len(slugs)} accounts, {len(lines)} requests "
            f"in rotation ({' and '.join(sorted(families))} URLs, 304s included)"
            + (f", fan-out {len(fanned)}, {args.feed_posts} posts per feed" if one_dyno else "")
        )
        load = {"threads": args.threads, "connections": args.connections}
        wrk(port, requests_file, rate=args.rate, duration=args.warmup, **load)

        if not fanned:
            memory.start()
        aging = Aging(pg, slugs, args.refresh_every)
        since = time.time()
        if fanned:
            sandbox.slow_refresh(0.1)
            with pg.connect() as conn:
                make_due(conn, fanned, feeds=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        aging.start()
        figures = wrk(port, requests_file, rate=args.rate, duration=args.duration, **load)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        aging.stop()
        time.sleep(3)  # let the last due account finish
        if fanned:  # the fan-out's last refreshes, still sampled
            try:
                wait_for(
                    lambda: (
                        beat_work_since(pg, since)[0].get("success", 0)
                        >= len(fanned) + len(aging.made_due)
                    ),
                    timeout=args.fanout_wait,
                    interval=1,
                    what="the fan-out's refreshes",
                )
            except StackError:
                pass  # reported below: how many were done while memory was sampled
        memory.stop()
        refreshes, synced = beat_work_since(pg, since)
        load_after = _load_average()

        served = int(figures["requests"])
        elapsed = figures["duration_us"] / 1e6
        errors = {k[7:]: int(v) for k, v in figures.items() if k.startswith("errors_")}
        bad = sum(errors.values())
        p99 = figures["latency_ms_p99"]
        lag_p99 = figures["lag_ms_p99"]
        rss = {name: _mb(memory.peak_rss[name]) for name in groups}
        pss = {name: _mb(memory.peak_pss[name]) for name in groups}
        client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

        print()
        print(
            f"offered {args.rate:.0f} req/s for {args.duration:.0f} s over {args.connections} "
            f"keep-alive connections (wrk -t{args.threads}, bench/load/rate.lua)"
        )
        print(f"  requests answered: {served} ({served / elapsed:.0f} req/s achieved)")
        print(f"  errors: {bad} ({', '.join(f'{k} {v}' for k, v in errors.items())})")
        print(
            "  latency from send: "
            + ", ".join(
                f"{q} {figures[f'latency_ms_{q}']:.2f} ms"
                for q in ("p50", "p90", "p99", "p99.9", "max")
            )
        )
        print(
            "  send lag against the schedule: "
            + ", ".join(f"{q} {figures[f'lag_ms_{q}']:.1f} ms" for q in ("p50", "p99", "p99.9"))
            + f", max {figures['lag_ms_p100']:.1f} ms"
        )
        print(
            f"  beat during the run: {refreshes.get('success', 0)} token refresh(es) "
            f"(outcomes {refreshes}), {synced} feed sync(s); {len(aging.made_due)} accounts "
            f"made due" + (f" one by one, {len(fanned)} at once" if fanned else "")
        )
        if one_dyno:
            print(
                f"  peak memory of the dyno: RSS {rss['dyno']:.0f} MB, PSS {pss['dyno']:.0f} MB "
                "(launcher, web server and worker: the whole process tree)"
            )
        else:
            for name in ("web", "worker"):
                print(
                    f"  peak memory {name + ':':7} RSS {rss[name]:.0f} MB, "
                    f"PSS {pss[name]:.0f} MB (process tree)"
                )
        print(
            f"  wrk's own CPU: {100 * client_cpu / elapsed:.0f}% of one core; "
            f"load average after: {load_after}"
        )

        checks = [
            (
                f"{TARGET_RATE:.0f} req/s for {TARGET_DURATION:.0f} s",
                args.rate >= TARGET_RATE
                and args.duration >= TARGET_DURATION
                and served >= 0.99 * args.rate * args.duration,
            ),
            ("zero errors", bad == 0),
            (f"p99 < {TARGET_P99_MS:.0f} ms", p99 < TARGET_P99_MS),
            (f"sends on schedule (lag p99 < {TARGET_LAG_P99_MS:.0f} ms)", lag_p99 < 1.0),
        ]
        memory_targets = (
            {"dyno": TARGET_DYNO_MB}
            if one_dyno
            else {"web": TARGET_WEB_MB, "worker": TARGET_WORKER_MB}
        )
        checks += [
            (f"{name} < {mb:.0f} MB (PSS)", pss[name] < mb) for name, mb in memory_targets.items()
        ]
        checks += [
            ("beat refreshed tokens during the run", refreshes.get("success", 0) > 0),
            ("beat synced feeds during the run", synced > 0),
        ]
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
