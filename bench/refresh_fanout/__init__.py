"""Benchmark of the refresh fan-out: ``python -m bench.refresh_fanout`` (``make bench-refresh``)."""
