# The two commands a newcomer needs:
#   make run    install, migrate and start web + Celery worker + beat (http://127.0.0.1:8000/)
#   make test   install the test dependencies and run the whole suite
# Both are idempotent and need nothing but Python 3.11 on the machine.

PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN    := $(VENV)/bin

.PHONY: run test install install-dev lint typecheck format layout bench-token bench-refresh bench-load bench-feed audit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	./scripts/install-test-tools

run: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py import_starting_token
	@echo ""
	@echo "  tokenagent is starting: open http://127.0.0.1:$(PORT)/  (Ctrl-C stops web, worker and beat)"
	@echo ""
	DEBUG=$${DEBUG:-1} AGENT_PORT=$(PORT) SANDBOX_BASE_URL=$${SANDBOX_BASE_URL:-http://127.0.0.1:$(PORT)/sandbox} \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho -f Procfile.dev start

test: install-dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest

# The gate CI runs before the tests: ruff (lint and format) and mypy with the
# django-stubs plugin ([tool.mypy] in pyproject.toml: annotations required outside
# the Django glue). `make typecheck` runs mypy alone.
lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

typecheck: install-dev
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# The code's layout, one line per module: name, lines, the docstring's first sentence.
layout:
	$(PYTHON) scripts/layout

# The benchmarks need only the runtime requirements (their process plumbing is in
# harness/, not in tests/) and a few system programs, which
# scripts/install-bench-tools installs from Debian's packages when missing (root or
# sudo the first time). ARGS="--help" lists each one's options.

# Token endpoints vs a bare Django view under the Procfile's web server (Granian) and
# gunicorn, the alternative (its pin is in requirements-dev.txt). Needs wrk
# (installed if missing); Redis figures too when it answers on 127.0.0.1:6379.
# Quick run: make bench-token ARGS="--servers procfile --caches file --rounds 1 --duration 2 --rate-duration 2"
bench-token: install
	./scripts/install-bench-tools wrk
	$(BIN)/pip install -q "$$(grep '^gunicorn==' requirements-dev.txt | cut -d' ' -f1)"
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.token_endpoints $(ARGS)

# 10,000 due accounts in beat's batches, Instagram answering after 100 ms, one Celery worker (threads
# pool): accounts/s, total time, worker peak RSS. Needs a running PostgreSQL on
# 127.0.0.1:5432 (or BENCH_DATABASE_URL) and redis-server (installed if missing).
# Quick run: make bench-refresh ARGS="--accounts 100"
bench-refresh: install
	./scripts/install-bench-tools redis-server
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.refresh_fanout $(ARGS)

# The Procfile's web + worker (beat) on a private PostgreSQL and Redis with the sandbox
# Instagram: a steady 5,000 token and feed requests/s for 60 s (wrk with
# bench/load/rate.lua) while beat refreshes tokens and syncs feeds; prints requests,
# errors, latency percentiles, send lag and peak memory (PSS) of web and worker.
# Needs wrk, redis-server and PostgreSQL's initdb/pg_ctl (installed if missing; no
# server need be running). Quick run: make bench-load ARGS="--rate 500 --duration 5 --accounts 3"
bench-load: install
	./scripts/install-bench-tools wrk redis-server initdb
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.load $(ARGS)

# Feed sync: the Procfile's worker (beat) on a private PostgreSQL and Redis reads 100
# accounts x 50 posts from the sandbox Instagram answering after 100 ms, mirroring every
# picture; prints time, worker CPU and peak memory beside a token-refresh baseline, and
# the bytes stored. Then the Procfile's web serves /feed/<account>.json and a mirrored
# picture: req/s and p50/p99 as ratios to /token/<account>.json in the same run. Needs
# redis-server, initdb and wrk (installed if missing; no server need be running).
# Quick run: make bench-feed ARGS="--accounts 5 --posts 12 --rounds 1 --duration 2 --rate-duration 2"
bench-feed: install
	./scripts/install-bench-tools redis-server initdb wrk
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.feed $(ARGS)

# Known vulnerabilities in the pinned requirements (pip-audit, PyPI's advisory data).
# --strict: a dependency it cannot look up is an error, so it never passes unchecked.
# Needs PyPI's per-version JSON API, which the CI machines cannot reach (see
# docs/SECURITY.md), so it is not part of .ci/run.
audit: install-dev
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements-dev.txt

clean:
	rm -rf var staticfiles
