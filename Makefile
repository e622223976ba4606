# The README's contract: `make demo` and `make test` work on a fresh clone with nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench soak lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/toolkit demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest -q -m bench tests/benchmarks --bench-out reports/bench -p no:cacheprovider

soak: $(STAMP)
	$(PY) -m pytest -q -m soak

lint: $(STAMP)
	$(VENV)/bin/ruff check toolkit tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
