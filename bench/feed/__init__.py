"""Feed sync benchmark (not a test): ``make bench-feed`` or ``python -m bench.feed --help``."""
