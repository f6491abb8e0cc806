"""Run the token-endpoint benchmark: ``python -m bench.token_endpoints``.

For each cache backend (the file cache of a one-machine install; Redis when it
answers) it starts every WSGI server to compare at once, each on its own port, the
way Heroku runs a Procfile line (``bash -c``, ``$PORT``, ``WEB_CONCURRENCY``): the
Procfile's ``web`` line exactly as written and the other candidates (gunicorn
gthread, Granian), with production settings (DEBUG off, a real SECRET_KEY; only
the TLS redirect is off since there is no TLS here) and one seeded account. The
servers load ``bench.token_endpoints.wsgi``: the agent's application plus a raw
WSGI hello-world, so each server is measured against its own ceiling:

- ``hello``: ``/bench/hello``, a raw WSGI callable (the server's ceiling),
- ``bare``: a Django view returning a constant JSON body (Django's own cost),
- ``json``: ``/token/bench.json``, ``js``: ``/token/bench.js``,
- ``304``: ``/token/bench.json`` with a matching ``If-None-Match``,
- ``feed``: ``/feed/bench.json`` (12 posts), ``feed-gz`` the same gzipped, and
  ``feed-dj`` the same gzipped through Django alone (``/bench/django/...``),
- ``img``: a mirrored picture (640 px, bytes in the database, kept by each web
  process once served), ``img-dj`` the same through Django alone, ``img-304`` its
  revalidation,

first throughput with wrk (keep-alive, ``-t2 -c50``), then, unless
``--rate-duration 0``, latency at a fixed 500 requests/s (fixed_rate.py). Rounds
interleave servers and endpoints, so a drift of the machine's load (other
processes) hits all alike; the median round is reported, with the load average
during the rounds. Prints one table with req/s, p50, p99 and each figure's ratio
to its server's ceiling (and to the bare Django view), and checks the targets on
the Procfile's server: every token read and the feed >= 60 % of the ceiling, p99 < 20 ms at
500 requests/s.
"""

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.token_endpoints import fixed_rate

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLUG = "bench"
HOST = "127.0.0.1"


def procfile_web_line() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("Procfile has no web: line")


# The candidates, each as a Procfile web line would be written: Granian through
# tokenagent/web.py (where its settings live), and gunicorn gthread as the Procfile
# ran it until Granian measured faster (its hooks in bench/token_endpoints/
# gunicorn_config.py). docs/SECURITY.md ("Fault drills and load") has the figures and the choice.
GRANIAN = "python -m tokenagent.web tokenagent.wsgi:application"
GUNICORN = (
    "gunicorn tokenagent.wsgi --config python:bench.token_endpoints.gunicorn_config --preload "
    "--worker-class gthread --threads 4 --timeout 25 --graceful-timeout 20 --keep-alive 95 "
    "--max-requests 20000 --max-requests-jitter 2000 --no-control-socket"
)
BENCH_APP = "bench.token_endpoints.wsgi"


def server_commands() -> dict[str, str]:
    """The Procfile's web line as written, and the other candidate servers."""
    web = procfile_web_line()
    commands = {"procfile": web}
    server = web.removeprefix("python scripts/dyno.py ")  # the one-dyno launcher
    for name, line in (("granian", GRANIAN), ("gunicorn", GUNICORN)):
        if line != server:
            commands[name] = line
    return commands


def bench_command(command: str) -> str:
    """``command`` serving the benchmark's application (the agent's, plus /bench/hello)."""
    return re.sub(r"\btokenagent\.wsgi\b", BENCH_APP, command)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def redis_reachable(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (ImportError, OSError, redis.RedisError):
        return False


def base_env(var_dir: Path, port: int, workers: int, redis_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "GUNICORN_CMD_ARGS")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.token_endpoints.settings",
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SECURE_SSL_REDIRECT": "False",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "INSTAGRAM_APP_ID": "bench-app-id",
            "INSTAGRAM_APP_SECRET": "bench-app-secret",
            "TOKENAGENT_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            # The web server alone (scripts/dyno.py runs it without the worker).
            "EMBEDDED_WORKER": "False",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


SEED = (
    f"""
import django; django.setup()
from datetime import timedelta
from django.utils import timezone
from accounts.models import InstagramAccount
from accounts.services.tokens import token_store
account, _ = InstagramAccount.objects.get_or_create(
    slug={SLUG!r}, defaults={{"ig_user_id": "17841400000099999", "username": "bench_bakery"}})
now = timezone.now()
token_store(account=account, access_token="IGAAbench" + "x" * 180,
            issued_at=now - timedelta(hours=1), expires_at=now + timedelta(days=59))
"""
    + """
# Its feed: 12 posts, each picture mirrored at every width into the database
# (FEED_IMAGE_STORAGE's default), as a sync leaves them.
from PIL import Image
import io
from accounts.images import image_renditions
from accounts.feed_storage import image_save
from accounts.models import FeedSnapshot
snapshot, _ = FeedSnapshot.objects.get_or_create(account=account)
posts = []
for i in range(12):
    picture = io.BytesIO()
    Image.effect_mandelbrot((1080, 1080), (-2 + i / 10, -1.5, 1, 1.5), 60).convert("RGB").save(
        picture, "JPEG", quality=90)
    sizes = []
    for r in image_renditions(picture.getvalue()):
        image_save(snapshot=snapshot, rendition=r, source_sha256=f"{i:064x}")
        sizes.append({"sha256": r.sha256, "width": r.width, "height": r.height})
    posts.append({"id": f"1790000000000{i:04d}", "media_type": "IMAGE",
                  "permalink": f"https://www.instagram.com/p/bench{i}/",
                  "caption": f"Bench post {i}", "timestamp": "2026-12-01T09:00:00+0000",
                  "image": {"sizes": sizes}})
snapshot.posts, snapshot.synced_at, snapshot.attempted_at = posts, now, now
snapshot.save()
"""
)


def prepare(env: dict[str, str]) -> None:
    python = str(BIN / "python")
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run([python, "-c", SEED], cwd=ROOT, env=env, check=True)


def get(url: str, headers: dict[str, str] | None = None):
    """(status, headers (case-insensitive), body)"""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def start_server(command: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({command}); see {log}")
        try:
            if get(f"http://{HOST}:{port}/bench/bare.json")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit(f"server did not answer within 40 s ({command}); see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def _wrk_field(pattern: str, out: str) -> str:
    m = re.search(pattern, out, re.M)
    if m is None:
        raise SystemExit(f"wrk printed no {pattern!r}:\n{out}")
    return m.group(1)


def wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(_wrk_field(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_wrk_field(r"^\s+50%\s+(\S+)", out))
    p99 = _ms(_wrk_field(r"^\s+99%\s+(\S+)", out))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


# /bench/django/...: the same URL through Django's handler alone (bench wsgi.py),
# beside the fast path's figure. IMAGE: a mirrored picture's URL (640 px).
IMAGE = "{image}"
ENDPOINTS: list[tuple[str, str, dict[str, str | None], int]] = [
    ("hello", "/bench/hello", {}, 200),
    ("bare", "/bench/bare.json", {}, 200),
    ("json", f"/token/{SLUG}.json", {}, 200),
    ("js", f"/token/{SLUG}.js", {}, 200),
    ("304", f"/token/{SLUG}.json", {"If-None-Match": None}, 304),
    ("feed", f"/feed/{SLUG}.json", {}, 200),
    ("feed-gz", f"/feed/{SLUG}.json", {"Accept-Encoding": "gzip"}, 200),
    ("feed-dj", f"/bench/django/feed/{SLUG}.json", {"Accept-Encoding": "gzip"}, 200),
    ("img", IMAGE, {}, 200),
    ("img-dj", f"/bench/django{IMAGE}", {}, 200),
    ("img-304", IMAGE, {"If-None-Match": IMAGE}, 304),
]
TOKEN_READS = ("json", "js", "304", "feed")


def _endpoints(base: str) -> list[tuple[str, str, dict[str, str], int]]:
    """ENDPOINTS with the 304's If-None-Match filled from a first answer, IMAGE
    with a picture of the feed (its ETag in a header)."""
    status, headers, body = get(f"{base}/token/{SLUG}.json")
    if status != 200 or not json.loads(body).get("token"):
        raise SystemExit(f"/token/{SLUG}.json answered {status}: {body[:200]!r}")
    etag = headers["ETag"]
    status, _, body = get(f"{base}/feed/{SLUG}.json")
    if status != 200:
        raise SystemExit(f"/feed/{SLUG}.json answered {status}: {body[:200]!r}")
    size = next(s for s in json.loads(body)["posts"][0]["image"]["sizes"] if s["width"] == 640)
    image = "/" + size["url"].split("/", 3)[3]
    image_tag = '"' + image.rsplit("/", 1)[1].split("-")[0] + '"'
    return [
        (
            name,
            path.replace(IMAGE, image),
            {k: image_tag if v == IMAGE else v or etag for k, v in hdrs.items()},
            expect,
        )
        for name, path, hdrs, expect in ENDPOINTS
    ]


def measure(servers: dict[str, str], cache: str, env: dict, args, logdir: Path) -> list[dict]:
    """Every server of ``servers`` (name -> command) started at once, each on its own
    port; rounds interleave servers and endpoints."""
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for server, command in servers.items():
            port = free_port()
            server_env = {**env, "PORT": str(port)}
            log = logdir / f"{server}-{cache}.log"
            procs[server] = (start_server(bench_command(command), server_env, port, log), port)
        plan = {}
        for server, (_, port) in procs.items():
            base = f"http://{HOST}:{port}"
            plan[server] = (port, _endpoints(base))
            for _, path, hdrs, _ in plan[server][1]:  # warm every worker and the cache
                wrk(base + path, hdrs, 2, args.connections)
            for _, path, hdrs, expect in plan[server][1]:
                status = get(base + path, hdrs)[0]
                if status != expect:
                    raise SystemExit(f"{server}: {path} answered {status}, expected {expect}")
        runs: dict[tuple[str, str], list[tuple[dict, fixed_rate.Result | None]]] = {}
        loads: list[float] = []
        for r in range(args.rounds):
            for server, (port, endpoints) in plan.items():
                for name, path, hdrs, expect in endpoints:
                    loads.append(os.getloadavg()[0])
                    w = wrk(f"http://{HOST}:{port}{path}", hdrs, args.duration, args.connections)
                    f = None
                    if args.rate_duration > 0:
                        f = fixed_rate.run(
                            host=HOST,
                            port=port,
                            path=path,
                            headers=hdrs,
                            expect_status=expect,
                            rate=args.rate,
                            duration=args.rate_duration,
                        )
                    runs.setdefault((server, name), []).append((w, f))
                    print(
                        f"  round {r + 1}: {server:<10} {cache:<5} {name:<5} "
                        f"{w['rps']:>8.0f} req/s  p99 {w['p99']:6.2f} ms"
                        + (f"  p99@{args.rate:.0f}/s {f.p99_ms:7.2f} ms" if f else "")
                        + f"  load {loads[-1]:.1f}",
                        flush=True,
                    )
    finally:
        for proc, _ in procs.values():
            stop_server(proc)
    load = sorted(loads)[len(loads) // 2] if loads else float("nan")
    rows = []
    for (server, name), found in runs.items():
        rows.append(
            {
                "server": server,
                "cache": cache,
                "endpoint": name,
                "wrk": _median(found, lambda run: run[0]["rps"])[0],
                "fixed": _median(found, lambda run: run[1].p99_ms if run[1] else 0)[1],
                "load": load,
            }
        )
    return rows


def _median(runs: list, key):
    return sorted(runs, key=key)[len(runs) // 2]


def report(rows: list[dict], rate: float) -> bool:
    print()
    print(
        f"{'server':<10} {'cache':<5} {'endpoint':<8} {'req/s':>8} {'ceiling':>8} {'vs bare':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} | {'@' + str(int(rate)) + '/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} | load"
    )
    ok = True
    base: dict[tuple[str, str, str], float] = {}
    for row in rows:
        base[(row["server"], row["cache"], row["endpoint"])] = row["wrk"]["rps"]
    for row in rows:
        w, f = row["wrk"], row["fixed"]
        key = (row["server"], row["cache"])
        ceiling = w["rps"] / base[(*key, "hello")]
        bare = w["rps"] / base[(*key, "bare")]
        fixed = (
            f"{f.achieved_rate:>8.0f} {f.p50_ms:>7.2f} {f.p99_ms:>7.2f} {f.max_ms:>7.1f} "
            f"{f.errors + w['bad']:>6}"
            if f
            else f"{'-':>8} {'-':>7} {'-':>7} {'-':>7} {w['bad']:>6}"
        )
        print(
            f"{row['server']:<10} {row['cache']:<5} {row['endpoint']:<8} {w['rps']:>8.0f} "
            f"{ceiling:>7.0%} {bare:>7.0%} {w['p50']:>7.2f} {w['p99']:>7.2f} | {fixed} | "
            f"{row['load']:.1f}"
            + (f"  socket errors: {w['socket_errors']}" if w["socket_errors"] else "")
        )
        if w["bad"] or (f and f.errors):
            ok = False
    print()
    for row in rows:
        if row["server"] != "procfile" or row["endpoint"] not in TOKEN_READS:
            continue
        ratio = row["wrk"]["rps"] / base[(row["server"], row["cache"], "hello")]
        good = ratio >= 0.6
        ok &= good
        print(
            f"target {row['endpoint']} >= 60% of the raw WSGI ceiling ({row['cache']} cache): "
            f"{ratio:.0%} {'OK' if good else 'MISSED'}"
        )
        if row["fixed"] is not None:
            good = row["fixed"].p99_ms < 20
            ok &= good
            print(
                f"target p99 < 20 ms at {rate:.0f} req/s, {row['endpoint']} ({row['cache']}): "
                f"{row['fixed'].p99_ms:.2f} ms {'OK' if good else 'MISSED'}"
            )
    return ok


def main() -> int:
    commands = server_commands()
    parser = argparse.ArgumentParser(
        prog="python -m bench.token_endpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--servers",
        default=",".join(commands),
        help=f"comma-separated, from {', '.join(commands)} (default: all installed)",
    )
    parser.add_argument(
        "--caches",
        default="file,redis",
        help="file and/or redis (redis is skipped when it does not answer)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="WEB_CONCURRENCY (Heroku sets 2 on basic dynos; this machine has 2 cores)",
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (median reported)"
    )
    parser.add_argument("--connections", type=int, default=50, help="wrk keep-alive connections")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed-rate requests/s")
    parser.add_argument(
        "--rate-duration",
        type=float,
        default=5.0,
        help="seconds per fixed-rate run (0: no fixed-rate runs)",
    )
    args = parser.parse_args()

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(commands)
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(sorted(unknown))}")
    available = []
    for name in servers:
        # python -m tokenagent.web needs Granian's package, which installs "granian".
        command = commands[name]
        program = "granian" if "tokenagent.web" in command else shlex.split(command)[0]
        if shutil.which(program, path=f"{BIN}:{os.environ.get('PATH', '')}"):
            available.append(name)
        else:
            print(f"skipping {name}: {program} is not installed (pip install {program})")
    caches = []
    for cache in (c for c in args.caches.split(",") if c):
        if cache == "redis" and not redis_reachable(args.redis_url):
            print(f"skipping the Redis cache: {args.redis_url} does not answer")
            continue
        caches.append(cache)

    print(f"Procfile web: {procfile_web_line()}")
    for name in available:
        print(f"  {name}: {commands[name]}")
    fixed = (
        f"fixed rate {args.rate:.0f}/s for {args.rate_duration:.0f}s"
        if args.rate_duration > 0
        else "no fixed-rate runs"
    )
    print(
        f"WEB_CONCURRENCY={args.workers}, wrk -t2 -c{args.connections} -d{args.duration}s, "
        f"{fixed}, {args.rounds} rounds (medians), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    inprocess: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-token-") as tmp:
        logdir = Path(tmp) / "logs"
        logdir.mkdir()
        for cache in caches:
            var_dir = Path(tmp) / f"var-{cache}"
            env = base_env(
                var_dir, free_port(), args.workers, args.redis_url if cache == "redis" else None
            )
            prepare(env)
            inprocess[cache] = json.loads(
                subprocess.run(
                    [str(BIN / "python"), "-m", "bench.token_endpoints.inprocess"],
                    cwd=ROOT,
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            rows += measure({s: commands[s] for s in available}, cache, env, args, logdir)
    if not rows:
        return 1
    print("\nPer request inside one process (WSGI application, no server), best of 5:")
    for cache, costs in inprocess.items():
        print(f"  {cache:<5} " + "  ".join(f"{k} {v:.1f} us" for k, v in costs.items()))
    return 0 if report(rows, args.rate) else 1


if __name__ == "__main__":
    sys.exit(main())
