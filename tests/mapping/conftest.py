from __future__ import annotations

import pytest

from toolkit.blueprint import load_blueprint
from toolkit.datafile import load_datafile


@pytest.fixture(scope="session")
def datafile():
    from tests.conftest import FIXTURES

    return load_datafile(FIXTURES / "datafile.json")


@pytest.fixture(scope="session")
def blueprint():
    return load_blueprint()
