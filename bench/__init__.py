"""Benchmarks (not tests): ``make bench-token``, ``make bench-refresh``, ``make bench-load``.
Each is a package run with ``python -m bench.<name>``; their process plumbing is in harness/."""
