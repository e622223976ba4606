"""The notebooks under nbval: every notebook runs top to bottom with its default parameters (the
bundled sample against sandboxes the notebooks start), and the cells marked ``# NBVAL_CHECK_OUTPUT``
must reproduce their recorded outputs (after the sanitizers in nbval_sanitize.cfg).

The notebooks are committed without outputs; the checked cells' outputs are recorded in
expected_outputs/<name>.json (by cell id, written by notebooks/build.py) and put back into a copy of
each notebook, which is what nbval runs.

nbval runs in a child pytest so that its flags stay out of the main run and so that the notebooks
write to a temporary folder (``TOOLKIT_NOTEBOOK_RUN_DIR``), never to reports/notebooks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
EXPECTED = Path(__file__).with_name("expected_outputs")
CHECK = "# NBVAL_CHECK_OUTPUT"
NAMES = ["00_onboarding_walkthrough", "01_load_export", "02_validate_rules", "03_replay", "04_reconcile"]


def _nbval(paths: list[Path], tmp: Path) -> tuple[subprocess.CompletedProcess, ET.Element]:
    junit = tmp / "nbval.xml"
    env = {**os.environ, "TOOLKIT_NOTEBOOK_RUN_DIR": str(tmp / "runs")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "300", f"--junitxml={junit}",
         "-o", "addopts=", "--rootdir", str(paths[0].parent), *map(str, paths)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc, ET.parse(junit).getroot()


def _build_module():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def _expected(name: str) -> dict:
    return json.loads((EXPECTED / f"{name}.json").read_text())


def _code_cells(name: str) -> list:
    return [c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nbval")
    reports = REPO / "reports" / "notebooks"
    before = sorted(reports.rglob("*")) if reports.exists() else []
    build, copies = _build_module(), tmp / "notebooks"
    copies.mkdir()
    for n in NAMES:  # the committed notebook plus the recorded outputs of its checked cells
        nb = build.with_outputs(nbformat.read(NOTEBOOKS / f"{n}.ipynb", as_version=4), _expected(n))
        nbformat.write(nb, copies / f"{n}.ipynb")
    proc, junit = _nbval([copies / f"{n}.ipynb" for n in NAMES], tmp)
    after = sorted(reports.rglob("*")) if reports.exists() else []
    return proc, junit, before == after, tmp / "runs"


def test_every_notebook_runs_and_its_checked_cells_match(nbval_run):
    proc, junit, _, _ = nbval_run
    cases = junit.findall(".//testcase")
    bad = [(c.get("name"), (c.find("failure") if c.find("failure") is not None else c.find("error")).get("message"))
           for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert proc.returncode == 0 and not bad, f"nbval failed: {bad[:5]}\n{proc.stdout[-4000:]}"
    assert not [c for c in cases if c.find("skipped") is not None]
    # one item per code cell of every notebook: nothing was left out of the run
    by_file = Counter(c.get("classname").removesuffix(".ipynb").rsplit(".", 1)[-1] for c in cases)
    assert by_file == {n: len(_code_cells(n)) for n in NAMES}


def test_notebooks_write_only_to_their_run_folder(nbval_run):
    _, _, reports_unchanged, runs = nbval_run
    assert reports_unchanged, "running the notebooks changed reports/notebooks"
    assert (runs / "walkthrough" / "pipeline" / "ledger.sqlite").exists()
    assert (runs / "ledger.sqlite").exists() and (runs / "stage_04_reconcile.json").exists()


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_parameterized_without_outputs_and_its_checks_are_recorded(name):
    cells = _code_cells(name)
    assert sum("parameters" in c.metadata.get("tags", []) for c in cells) == 1
    assert not [c for c in cells if c.outputs or c.execution_count], f"{name}: outputs committed"
    checked = {c.id for c in cells if CHECK in c.source}
    assert checked, f"{name}: no cell is checked by nbval"
    expected = _expected(name)
    assert set(expected) == checked, f"{name}: recorded outputs do not match the checked cells"
    for cell_id, rec in expected.items():  # a checked cell must not depend on stderr noise
        assert rec["outputs"], f"{name} {cell_id}: no recorded output"
        assert not [o for o in rec["outputs"] if o["output_type"] == "stream" and o.get("name") == "stderr"], cell_id


def test_notebooks_are_what_the_generator_writes():
    build = _build_module()
    generated = {"00_onboarding_walkthrough": build.WALKTHROUGH, **build.STAGES}
    assert sorted(generated) == NAMES
    for name, cells in generated.items():
        want = [(c.cell_type, c.source) for c in build.build(name, cells).cells]
        have = [(c.cell_type, c.source) for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells]
        assert have == want, f"{name}.ipynb differs from notebooks/build.py: run .venv/bin/python notebooks/build.py"


def test_a_wrong_checked_output_fails_nbval(tmp_path):
    """The wiring compares outputs: a checked cell whose committed output is wrong fails."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    cell = nbformat.v4.new_code_cell(CHECK + "\nfrom toolkit.money import to_minor_units\n"
                                     "to_minor_units('19.99', 'GBP')")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1998"}, execution_count=1)]
    nb.cells = [cell]
    path = tmp_path / "wrong.ipynb"
    nbformat.write(nb, path)
    proc, junit = _nbval([path], tmp_path)
    assert proc.returncode == 1
    failures = junit.findall(".//testcase/failure")
    assert len(failures) == 1 and "1999" in proc.stdout
