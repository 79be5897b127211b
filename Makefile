# meshviz developer and CI entry points. `make test` works from a fresh clone on a fresh machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp
LINT_PATHS := meshviz tests bench manage.py
PG_TEST_URL := postgres://postgres@127.0.0.1:5432/test
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-m "not kernel"'
PYTEST_ARGS ?=

.PHONY: help venv sysdeps lint test run bench fuzz clean kernel-fuzz

help:
	@echo "make run    - set up and run the app on http://127.0.0.1:8000/"
	@echo "make test   - set up, lint and run all tests (kernel tests need root + network namespaces)"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make kernel-fuzz N=1000 SEED=3 - the differential kernel fuzzer (engine vs the real kernel)"
	@echo "make fuzz   - >= 1,000,000 fuzzed inputs over every parser, the story and what-if (tests/fuzz)"
	@echo "make venv | sysdeps | bench | clean"

venv: $(STAMP)

# Re-installs only when requirements.txt changes.
$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Debian packages the kernel tests, graph rendering and the browser tests (chromium) need; installed only when a
# command is missing. Without recommends, chromium lacks fonts-liberation (asked for here); headless needs no more.
sysdeps:
	@missing=""; \
	command -v iptables-restore >/dev/null 2>&1 || missing="$$missing iptables"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v conntrack >/dev/null 2>&1 || missing="$$missing conntrack"; \
	command -v ipset >/dev/null 2>&1 || missing="$$missing ipset"; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	test -x /usr/bin/chromium || missing="$$missing chromium fonts-liberation"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != "0" ]; then \
		echo "note: not root, not installing Debian packages:$$missing (kernel and browser tests need them)"; \
		exit 0; \
	fi; \
	echo "sysdeps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq; \
	apt-get install -y -qq --no-install-recommends $$missing; \
	case "$$missing" in *chromium*) \
		dom="$$(timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run --dump-dom about:blank \
			2>/dev/null || true)"; \
		case "$$dom" in *"<body"*) ;; *) echo "sysdeps: chromium does not run headless" >&2; exit 1;; esac;; \
	esac

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy meshviz
	$(BIN)/lint-imports --no-cache

# Uses PostgreSQL when DATABASE_URL is unset and 127.0.0.1:5432 answers; SQLite otherwise.
test: venv sysdeps
	@$(MAKE) --no-print-directory lint
	@if [ -z "$${DATABASE_URL:-}" ] && \
		$(BIN)/python -c 'import socket; socket.create_connection(("127.0.0.1", 5432), timeout=2).close()' 2>/dev/null; then \
		export DATABASE_URL="$(PG_TEST_URL)"; \
	fi; \
	case "$${DATABASE_URL:-}" in \
		"") echo "database: SQLite (DATABASE_URL unset, PostgreSQL not reachable on 127.0.0.1:5432)";; \
		postgres*|pgsql*) echo "database: PostgreSQL ($$DATABASE_URL)";; \
		*) echo "database: $$DATABASE_URL";; \
	esac; \
	$(BIN)/pytest --durations=25 $(PYTEST_ARGS)

# The differential kernel fuzzer over N random pods (root + network namespaces): make kernel-fuzz N=1000 SEED=3
N ?= 200
SEED ?= 1
kernel-fuzz: venv sysdeps
	$(BIN)/python -m tests.kernel.fuzz --n $(N) --seed $(SEED)

run: venv sysdeps
	$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py demo_user > $(VENV)/demo-login.txt
	@echo "meshviz: loading the bundled examples"
	@$(BIN)/python manage.py load_examples --base-url http://127.0.0.1:8000
	@echo "meshviz: http://127.0.0.1:8000/"
	@sed 's/^/meshviz: /' $(VENV)/demo-login.txt
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# Fuzzing (tests/fuzz, docs/development.md): 150,000 inputs for each of the six parsers (iptables, ip rule, ip route,
# sysctl, Envoy, request JSON) and 50,000 each for the story and what-if: 1,000,000 in all. `make test` runs a slice.
FUZZ_PARSER_INPUTS ?= 150000
FUZZ_SIM_INPUTS ?= 50000
fuzz: venv
	MESHVIZ_FUZZ_PROFILE=meshviz-fuzz \
	MESHVIZ_FUZZ_EXAMPLES_IPTABLES=$(FUZZ_PARSER_INPUTS) MESHVIZ_FUZZ_EXAMPLES_IP_RULE=$(FUZZ_PARSER_INPUTS) \
	MESHVIZ_FUZZ_EXAMPLES_IP_ROUTE=$(FUZZ_PARSER_INPUTS) MESHVIZ_FUZZ_EXAMPLES_SYSCTL=$(FUZZ_PARSER_INPUTS) \
	MESHVIZ_FUZZ_EXAMPLES_ENVOY=$(FUZZ_PARSER_INPUTS) MESHVIZ_FUZZ_EXAMPLES_JSON=$(FUZZ_PARSER_INPUTS) \
	MESHVIZ_FUZZ_EXAMPLES_STORY=$(FUZZ_SIM_INPUTS) MESHVIZ_FUZZ_EXAMPLES_WHATIF=$(FUZZ_SIM_INPUTS) \
		$(BIN)/pytest tests/fuzz -p no:randomly -q $(PYTEST_ARGS)
	@$(BIN)/python -m tests.fuzz.report

# make bench: the engine's figures (bench/run.py), then the web's (issue 15): a node-sized pod's upload -> verdict,
# each page and a what-if edit (bench/web.py), and BENCH_LOAD_SECONDS of BENCH_LOAD_CLIENTS clients uploading a
# typical pod to a `make run`-style server (bench/load.py); each prints its figures against the targets.  The web
# part takes 2-4 minutes on the 2-core development machine.  Longer runs, e.g.:
#   make bench BENCH_LOAD_SECONDS=60 BENCH_WEB_ARGS='--repeat 5' BENCH_LOAD_ARGS='--distinct'
BENCH_ARGS ?=
BENCH_WEB_ARGS ?= --repeat 3
BENCH_LOAD_CLIENTS ?= 10
BENCH_LOAD_SECONDS ?= 20
BENCH_LOAD_ARGS ?=
bench: venv
	@if [ -f bench/run.py ]; then \
		PYTHONPATH="$(CURDIR)" $(BIN)/python bench/run.py $(BENCH_ARGS); \
	else \
		echo "bench/run.py not found: nothing to run"; \
	fi
	@echo "== web: a node-sized pod's upload -> verdict, pages and what-if (bench/web.py)"
	PYTHONPATH="$(CURDIR)" $(BIN)/python bench/web.py $(BENCH_WEB_ARGS)
	@echo "== web: $(BENCH_LOAD_CLIENTS) clients uploading for $(BENCH_LOAD_SECONDS) s (bench/load.py)"
	@workdir="$$(mktemp -d -t meshviz-bench-load-XXXXXX)"; \
	PYTHONPATH="$(CURDIR)" $(BIN)/python bench/load.py --clients $(BENCH_LOAD_CLIENTS) \
		--seconds $(BENCH_LOAD_SECONDS) --workdir "$$workdir/run" $(BENCH_LOAD_ARGS); \
	rm -rf "$$workdir"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks staticfiles tests/artifacts *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
