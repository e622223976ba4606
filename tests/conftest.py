"""Shared test set-up: isolate every test from the user's environment and caches."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]

# A suite started in the background by a non-interactive shell (`make test &`, some CI runners)
# inherits SIGINT ignored, and so would every command the tests start (an ignored signal stays
# ignored across exec, and Python then installs no Ctrl-C handler): the tests that interrupt a
# command could not. A handler here is reset to the default in each started command.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads the developer's secrets or writes to the real datafile cache."""
    for name in ("OPTIMIZELY_SDK_KEY", "OPTIMIZELY_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path_factory.mktemp("toolkit-cache")))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture
def fixture_datafile_path() -> Path:
    return FIXTURES / "datafile.json"


@pytest.fixture
def fixture_install_path() -> Path:
    return FIXTURES / "install.json"


# ---------------------------------------------------------------------------------- benchmarks
def pytest_addoption(parser):
    parser.addoption("--bench-out", default=None, help="folder for the benchmark table (make bench)")
    parser.addoption("--bench-scale", default="full", choices=["tiny", "full"],
                     help="benchmark sizes: full (make bench) or tiny (inside make test)")


_COLLECTOR = None


@pytest.fixture(scope="session")
def bench(request):
    """Collects benchmark rows; `make bench` prints them and writes reports/bench/<ts>.json
    (and reports/bench/partial.jsonl as rows come, so an interrupted run keeps what it measured)."""
    global _COLLECTOR
    from tests.benchmarks.harness import BenchCollector

    if _COLLECTOR is None:
        out = request.config.getoption("--bench-out")
        _COLLECTOR = BenchCollector(partial=Path(out) / "partial.jsonl" if out else None)
    return _COLLECTOR


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _COLLECTOR is None or not _COLLECTOR.rows:
        return
    terminalreporter.write_sep("=", "benchmarks")
    terminalreporter.write_line(_COLLECTOR.table())
    out = config.getoption("--bench-out")
    if out:
        path = _COLLECTOR.write(Path(out))
        terminalreporter.write_line(f"written to {path}")
