# The README's contract: `make demo` and `make test` work on a fresh clone with nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench soak lint install clean chromium bytecode

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The toolkit's own modules compiled ahead (an editable install leaves them to each run, and with
# PYTHONDONTWRITEBYTECODE set every command compiled ~45 modules again: ~50 ms of its start).
bytecode: $(STAMP)
	@$(PY) -m compileall -q toolkit

demo: bytecode
	$(VENV)/bin/toolkit demo

# The report test opens the HTML report in headless Chromium (Debian's package) with the network cut.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's chromium for the report test (apt-get)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: bytecode chromium
	$(PY) -m pytest -q

bench: bytecode
	$(PY) -m pytest -q -m bench tests/benchmarks --bench-out reports/bench -p no:cacheprovider

soak: $(STAMP)
	$(PY) -m pytest -q -m soak

lint: $(STAMP)
	$(VENV)/bin/ruff check toolkit tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
