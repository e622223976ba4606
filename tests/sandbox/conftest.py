from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.sandbox import Sandbox

FIXTURE_DATAFILE = Path(__file__).resolve().parents[1] / "fixtures" / "datafile.json"


@pytest.fixture
def sandbox(tmp_path):
    """A running sandbox on a free loopback port, fresh state, the fixture datafile."""
    with Sandbox(tmp_path / "sandbox", datafile=FIXTURE_DATAFILE) as sb:
        yield sb
