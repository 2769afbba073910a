# Two entry points a new user needs: `make report` (the main job) and `make test` (everything CI runs).
# Each installs what it needs: a .venv with the package and its extras, and deno from npm (package-lock.json).
PY      := .venv/bin/python
STAMP   := .venv/.installed
DENO    := node_modules/.bin/deno

.PHONY: test report lint typecheck pytest bench-kv clean

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

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: $(STAMP)
	.venv/bin/mypy

# pytest exits 5 when it collects no test: that is a failure here, never a pass.
pytest: $(STAMP) $(DENO)
	$(PY) -m pytest -q

test: lint typecheck pytest

bench-kv: $(STAMP) $(DENO)
	$(PY) -m bench.kv_micro --fast

report: $(STAMP) $(DENO)
	$(PY) -m bench.kv_micro --fast

clean:
	rm -rf .venv node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
