"""Process settings for bulk work (toolkit.runtime): applied before the native libraries load,
never over the user's own environment, and nothing without being asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

PROBE = textwrap.dedent("""
    import gc, json, os, sys
    from toolkit import runtime
    {before}
    {tune}
    import numpy  # after: it reads the settings as it loads
    threads = len(os.listdir("/proc/self/task"))
    print(json.dumps({{"gc": gc.get_threshold()[0], "frozen": gc.get_freeze_count(),
                       "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                       "mimalloc": os.environ.get("MIMALLOC_PURGE_DELAY"), "threads": threads}}))
""")


def _probe(before: str = "", tune: bool = True, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MIMALLOC_PURGE_DELAY")}
    done = subprocess.run([sys.executable, "-c", PROBE.format(before=before, tune="runtime.tune_process(); runtime.freeze_imports()" if tune else "")], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_tune_process_sets_the_collector_and_the_native_libraries_up_before_they_load():
    from toolkit.runtime import GC_THRESHOLD

    got = _probe()
    assert got["gc"] == GC_THRESHOLD and got["frozen"] > 1000  # the imports so far, out of reach
    assert got["blas"] == "1" and got["mimalloc"] == "1000"
    assert got["threads"] == 1  # no OpenBLAS thread spinning beside the main one
    if (os.cpu_count() or 1) > 1:  # the control: numpy alone starts one
        assert _probe(tune=False)["threads"] > 1


def test_the_users_environment_wins():
    got = _probe(OPENBLAS_NUM_THREADS="2", MIMALLOC_PURGE_DELAY="7")
    assert got["blas"] == "2" and got["mimalloc"] == "7"


def test_too_late_for_a_library_already_loaded_is_left_alone():
    got = _probe(before="import numpy")
    assert got["blas"] is None  # setting it now would only mislead the processes started later


def test_nothing_happens_in_a_process_that_did_not_ask():
    import gc

    from toolkit.runtime import freeze_imports

    before = gc.get_freeze_count()
    freeze_imports()  # e.g. a notebook calling the CLI's main(): no freezing of its objects
    assert gc.get_freeze_count() == before
