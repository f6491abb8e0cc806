"""A stand-alone fake Instagram for the benchmark: answers every refresh of a token
starting with ``--accept-prefix`` after ``--delay`` seconds, with many requests in
flight at once. ``python -m bench.refresh_fanout.instagram --port 8765 --delay 0.1``"""

import argparse
import signal
import threading

from tests.integration.refresh_harness import FakeInstagram


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--accept-prefix", default="IGAAbench")
    args = parser.parse_args()
    fake = FakeInstagram(port=args.port, accept_prefix=args.accept_prefix)
    fake.delay("refresh", args.delay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print(f"fake Instagram on {fake.base_url}, refresh delay {args.delay}s", flush=True)
    stop.wait()
    print(f"fake Instagram answered {len(fake.calls('refresh'))} refreshes", flush=True)
    fake.close()


if __name__ == "__main__":
    main()
