# Two commands do everything from a fresh clone: `make test` and `make serve`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two install stamps: serving needs the package alone; testing adds the test toolchain.
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test
# The project's bytecode, written as a regular (non-editable) install writes it: an
# editable install leaves that to the first run, which never happens where
# PYTHONDONTWRITEBYTECODE is set, and then every `ikledger` start compiles the ~4,500
# lines it imports again (about 25 ms of `ikledger timeline`). Stale files are ignored.
COMPILE := $(BIN)/python -m compileall -q store projections forwarding receiver

.PHONY: install test serve lint screenshot bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(SERVE_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(COMPILE)
	touch $(SERVE_STAMP)

$(TEST_STAMP): $(SERVE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

install: $(SERVE_STAMP)

# The suite in TEST_WORKERS processes (pytest-xdist); each worker starts its own
# throwaway PostgreSQL cluster and browser. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

serve: $(SERVE_STAMP)
	$(BIN)/ikledger serve --host 127.0.0.1 --port 8080 --db ikledger.db

# Formatting, lint and the type check (mypy's files and overrides: pyproject.toml).
lint: $(TEST_STAMP)
	$(BIN)/ruff format --check store projections forwarding receiver tests
	$(BIN)/ruff check store projections forwarding receiver tests
	$(BIN)/mypy

# docs/timeline.png, taken by the browser test of the timeline page (Chromium needed);
# `make test` writes its screenshot to a temporary folder, never into the tree.
screenshot: $(TEST_STAMP)
	IKLEDGER_SCREENSHOT_TO=$(CURDIR)/docs/timeline.png $(BIN)/python -m pytest -q \
		tests/ui/test_pages.py -k test_timeline_draws_one_bar_per_transformation_and_links_marks

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(TEST_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Benchmarks are not tests: never part of `make test`. See bench/README.md.
bench: $(BENCH_STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.run

bench-quick: $(BENCH_STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
