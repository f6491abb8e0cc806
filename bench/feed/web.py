"""The web side of bench/feed: the Procfile's ``web`` line serving what the syncs
stored, measured beside the token URL in the same run.

Once the worker phases are done (the worker stopped, the feeds synced and their
pictures in the database), it starts the Procfile's ``web`` line as a dyno runs it
and measures, for one account, three URLs in interleaved rounds (the median round
is kept, so a drift of the machine's load hits all three alike):

- ``token``: ``/token/<account>.json``, the baseline;
- ``feed``: ``/feed/<account>.json`` (the whole feed, every post);
- ``image``: one mirrored picture's content-addressed URL, as the feed lists it.

Each with wrk (keep-alive, ``-t2``): requests/s and p50/p99 under saturation; then,
unless ``--rate-duration 0``, p50/p99 at a fixed rate with an open-loop client
(bench/token_endpoints/fixed_rate.py; ``sent/s`` below the rate means the server
fell behind it). Every figure is printed with its ratio to the token URL's.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.token_endpoints import fixed_rate
from bench.token_endpoints.__main__ import wrk
from harness import procfile_stack as stack
from harness.processes import HOST, StackError, wait_for

IMAGE_WIDTH = 640  # the width measured when the picture has it (else its first size)
# The web side's options: name -> (type, default, help).
OPTIONS = {
    "--duration": (int, 10, "seconds per wrk run"),
    "--rounds": (int, 3, "interleaved rounds (the median is reported)"),
    "--connections": (int, 50, "wrk keep-alive connections"),
    "--rate": (float, 200.0, "fixed-rate requests/s"),
    "--rate-duration": (float, 5.0, "seconds per fixed-rate run (0: none)"),
}


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("web side")
    for name, (kind, default, text) in OPTIONS.items():
        group.add_argument(name, type=kind, default=default, help=text)


@dataclass
class Url:
    name: str
    path: str
    bytes: int


@dataclass
class Row:
    url: Url
    rps: float
    p50: float
    p99: float
    non_2xx: int
    fixed: fixed_rate.Result | None


def _get(port: int, path: str) -> bytes:
    status, body = stack.http_get(port, path, timeout=30)
    if status != 200:
        raise StackError(f"{path} answered {status}: {body[:200]!r}")
    return body


def _urls(port: int, slug: str) -> list[Url]:
    token = _get(port, f"/token/{slug}.json")
    feed = _get(port, f"/feed/{slug}.json")
    posts = json.loads(feed)["posts"]
    if not posts:
        raise StackError(f"/feed/{slug}.json lists no posts")
    sizes = posts[0]["image"]["sizes"]
    size = next((s for s in sizes if s["width"] == IMAGE_WIDTH), sizes[0])
    image = urlsplit(size["url"]).path
    return [
        Url("token", f"/token/{slug}.json", len(token)),
        Url("feed", f"/feed/{slug}.json", len(feed)),
        Url(f"image {size['width']} px", image, len(_get(port, image))),
    ]


def measure(env: dict[str, str], logdir: Path, slug: str, args) -> tuple[list[Row], float]:
    """Start the Procfile's web line on ``env`` (its PORT), measure, stop it.
    Returns the median rows and the web's peak PSS in MB."""
    port = int(env["PORT"])
    web = stack.procfile_process("web", env, logdir).start()
    memory = stack.MemorySampler({"web": web}, interval=0.25).start()
    try:
        wait_for(
            lambda: stack.web_answers(port, "/healthz") or _dead(web),
            timeout=90,
            what="the web process",
        )
        urls = _urls(port, slug)
        for url in urls:  # warm every worker process and the cache
            wrk(f"http://{HOST}:{port}{url.path}", {}, 2, args.connections)
        runs: dict[str, list[Row]] = {url.name: [] for url in urls}
        for r in range(args.rounds):
            for url in urls:
                load = os.getloadavg()[0]
                w = wrk(f"http://{HOST}:{port}{url.path}", {}, args.duration, args.connections)
                fixed = None
                if args.rate_duration > 0:
                    fixed = fixed_rate.run(
                        host=HOST,
                        port=port,
                        path=url.path,
                        headers={},
                        expect_status=200,
                        rate=args.rate,
                        duration=args.rate_duration,
                    )
                runs[url.name].append(Row(url, w["rps"], w["p50"], w["p99"], w["bad"], fixed))
                print(
                    f"  round {r + 1}: {url.name:<14} {w['rps']:>8.0f} req/s  "
                    f"p50 {w['p50']:6.2f} ms  p99 {w['p99']:7.2f} ms"
                    + (f"  p99@{args.rate:.0f}/s {fixed.p99_ms:7.2f} ms" if fixed else "")
                    + f"  load {load:.1f}",
                    flush=True,
                )
    finally:
        memory.stop()
        web.stop()
    # The median round by throughput, each URL's own.
    rows = [sorted(found, key=lambda row: row.rps)[len(found) // 2] for found in runs.values()]
    return rows, memory.peak_pss["web"] / 1024


def _dead(web: stack.Process) -> bool:
    if not web.running():
        raise StackError(f"the web process exited:\n{web.tail()}")
    return False


def _ratio(value: float, base: float) -> str:
    return f"x{value / base:.2f}" if base else "-"


def report(rows: list[Row], peak_pss_mb: float, args) -> None:
    base = rows[0]
    rate = f"@{args.rate:.0f}/s"
    print()
    print(
        f"{'web (Procfile)':<16}{'bytes':>8}{'req/s':>16}{'p50 ms':>16}{'p99 ms':>16}"
        + (f"{rate + ' sent/s':>15}{rate + ' p50':>20}{rate + ' p99':>20}" if base.fixed else "")
        + f"{'non-2xx':>9}"
    )
    for row in rows:
        cells = [
            f"{row.rps:.0f} ({_ratio(row.rps, base.rps)})",
            f"{row.p50:.2f} ({_ratio(row.p50, base.p50)})",
            f"{row.p99:.2f} ({_ratio(row.p99, base.p99)})",
        ]
        line = f"{row.url.name:<16}{row.url.bytes:>8}" + "".join(f"{c:>16}" for c in cells)
        if row.fixed and base.fixed:
            f, b = row.fixed, base.fixed
            line += f"{f.achieved_rate:>15.0f}"
            line += f"{f'{f.p50_ms:.2f} ({_ratio(f.p50_ms, b.p50_ms)})':>20}"
            line += f"{f'{f.p99_ms:.2f} ({_ratio(f.p99_ms, b.p99_ms)})':>20}"
        errors = row.non_2xx + (row.fixed.errors if row.fixed else 0)
        print(line + f"{errors:>9}")
    print(
        f"  ratios are to {base.url.path} in the same run; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s, median of {args.rounds} round(s); web peak PSS "
        f"{peak_pss_mb:.0f} MB"
    )
