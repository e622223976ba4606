"""Shared test set-up: isolate every test from the user's environment and caches."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


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
