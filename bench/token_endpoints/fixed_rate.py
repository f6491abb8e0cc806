"""An open-loop, fixed-rate HTTP load generator with keep-alive connections.

wrk measures how fast a server can go; latency at a given load needs requests
sent on a schedule. Each of ``connections`` threads owns one keep-alive
connection and sends on its own slot of the schedule (request i is due at
start + i/rate); latency is measured from the time a request was *due*, so a
stall that delays later requests counts against them (no coordinated omission)."""

import http.client
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    sent: int
    errors: int
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(
    *,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    expect_status: int,
    rate: float = 500.0,
    duration: float = 5.0,
    connections: int = 16,
) -> Result:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    interval = connections / rate
    start = time.perf_counter() + 0.2
    end = start + duration

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        due = start + i / rate
        while due < end:
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != expect_status:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
            latencies[i].append(time.perf_counter() - due)
            due += interval
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    values = sorted(v * 1000 for per in latencies for v in per)
    return Result(
        sent=len(values),
        errors=sum(errors),
        achieved_rate=len(values) / elapsed,
        p50_ms=_percentile(values, 0.50),
        p99_ms=_percentile(values, 0.99),
        max_ms=values[-1] if values else float("nan"),
    )
