"""Notebook logging: in a kernel nobody configures logging; stages.open_run installs one redacting
handler on stderr so the toolkit's warnings are shown without the secrets they may mention."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import logging
from toolkit.pipeline import stages

first = stages.notebook_logging()
again = stages.notebook_logging("KernelSecret-1234")
assert first is again and len(logging.getLogger("toolkit").handlers) == 1
logging.getLogger("toolkit.config").warning("fetching https://cdn.optimizely.com/datafiles/KernelSecret-1234.json")
logging.getLogger("toolkit.results").error("the API refused token %s", "KernelSecret-1234")
logging.getLogger("toolkit.config").info("an info line stays quiet")
'''


def test_notebook_logging_prints_redacted_warnings_to_stderr_once():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("WARNING toolkit.config: fetching https://cdn.optimizely.com/")
    assert lines[1].startswith("ERROR toolkit.results: the API refused token ")
    assert "KernelSecret-1234" not in proc.stderr
    assert proc.stdout == ""


def test_notebook_logging_leaves_configured_logging_alone():
    script = "import logging; logging.basicConfig(); from toolkit.pipeline import stages; " \
             "assert stages.notebook_logging('x') is None; assert not logging.getLogger('toolkit').handlers"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
