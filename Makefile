# Two entry points a new user needs: `make report` (the main job) and `make test` (everything CI runs).
# Each installs what it needs: a .venv with the package and its extras, and deno from npm (package-lock.json).
PY      := .venv/bin/python
STAMP   := .venv/.installed
DENO    := node_modules/.bin/deno

.PHONY: install test report gate lint typecheck pytest bench-kv baseline clean valgrind

# The quick suite's results in make test: the gate reads them, and the notebook test runs on them.
GATE_RESULTS := .bench/quick.json
# make report and the gate pin their timing workers to one CPU (the last this shell may use): on a shared VM, unpinned
# hops to the database thread cost 3-4x more for minutes at a time (docs/bench.md, "Pinning"). BENCH_CPU= unpins.
BENCH_CPU ?= $(shell python3 -c 'import os; print(max(os.sched_getaffinity(0)))')
PIN := $(if $(BENCH_CPU),--affinity $(BENCH_CPU))

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DENO): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	$(DENO) --version
	touch $(DENO)

install: $(STAMP) $(DENO)

# The gate's instruction tier counts CPU instructions under callgrind: install valgrind from Debian's packages when
# it is missing (as root, or through sudo), as deno is installed from npm.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
valgrind:
	@command -v valgrind >/dev/null || { echo "installing valgrind (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	@valgrind --version

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: $(STAMP)
	.venv/bin/mypy

# pytest exits 5 when it collects no test: make treats that (like any non-zero exit) as a failure.
pytest: $(STAMP) $(DENO)
	KVQ_RESULTS=$(if $(wildcard $(GATE_RESULTS)),$(abspath $(GATE_RESULTS)),) $(PY) -m pytest -q

# The regression gate: the quick suite on the embedded SQLite store against the committed baseline (docs/ci.md).
# Coverage, N+1 findings, exact counts, complexity classes and CPU instructions (callgrind) fail the build; wall
# times are reported only (two runs at different times on a shared machine differ more than a regression would).
gate: $(STAMP) $(DENO) valgrind
	$(PY) -m bench run --suite quick --backend sqlite $(PIN) --no-progress -o $(GATE_RESULTS)
	$(PY) -m bench gate --baseline reports/baseline/quick.json $(GATE_RESULTS) --times report-only

test: lint typecheck gate pytest

# The main job: the quick suite on the embedded default (SQLite), and its report in reports/latest/.
report: $(STAMP) $(DENO)
	$(PY) -m bench run --suite quick --backend sqlite $(PIN) -o reports/latest/results.json
	$(PY) -m bench report reports/latest/results.json -o reports/latest
	@echo "report: reports/latest/index.html (and reports/latest/README.md)"

# Rewrite the gate's baseline from the latest report's results (review the diff before committing it).
baseline: $(STAMP)
	$(PY) -m bench baseline update reports/latest/results.json

# A developer diagnostic from tools/ (not installed; docs/performance.md): the KV micro-benchmark, store by store.
bench-kv: $(STAMP) $(DENO)
	$(PY) -m tools.kv_micro

clean:
	rm -rf .venv node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench
