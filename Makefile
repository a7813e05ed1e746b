# make demo: run the example app end to end on embedded servers (nothing to install but Python >= 3.11)
# make test: install dev dependencies, start private servers, run the whole suite
# make bench: the benchmark suite of issue 14 (~10 min on 2 cores); make bench-quick: its CI smoke run
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test docs bench bench-quick screenshots clean

$(PY):
	$(PYTHON) -c 'import sys; sys.exit("ormevents needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,docs]"
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.dev-installed
	$(PY) -m pip install --quiet -e ".[dev,docs,bench]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) -m example_app demo

test: $(VENV)/.dev-installed
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

docs: $(VENV)/.dev-installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks

bench-quick: $(VENV)/.dev-installed
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) site .pytest_cache

# the dashboard's screenshots in docs/img/, taken by its browser test
screenshots: $(VENV)/.dev-installed
	ORMEVENTS_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/integration/test_dashboard_browser.py
