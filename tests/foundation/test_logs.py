"""Other libraries' log records reach stderr one line each, with no traceback (one clear line)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import logging, sys
    from toolkit.logs import setup_logging
    setup_logging(int(sys.argv[1]))
    try:
        raise RuntimeError("socket closed\\nwhile reading")
    except RuntimeError:
        logging.getLogger("tornado.general").error("Uncaught exception in ZMQStream callback", exc_info=True)
    logging.getLogger("tornado.general").info("not shown: below warning")
""")


def _stderr(verbosity: int) -> str:
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(verbosity)], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_a_third_party_error_with_a_traceback_is_one_line():
    err = _stderr(0)
    assert err.splitlines() == ["ERROR tornado.general: Uncaught exception in ZMQStream callback "
                                "(RuntimeError: socket closed while reading)"]


def test_debug_verbosity_keeps_the_traceback():
    err = _stderr(2)
    assert "Traceback (most recent call last)" in err and "RuntimeError: socket closed" in err
